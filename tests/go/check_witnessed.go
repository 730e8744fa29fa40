// An independent check of a Kansa ledger's published tiles and witness cosignatures with Go's
// golang.org/x/mod/sumdb/note and sumdb/tlog (Debian's golang-golang-x-mod-dev) and
// crypto/ed25519, none of Kansa's code.
//
// Usage: check_witnessed LOG_VKEY_FILE WITNESS_VKEYS_FILE TILES_DIR INDEX
//
//   - TILES_DIR/checkpoint must verify with the log's key through sumdb/note, which has to
//     ignore the witnesses' cosignature lines (unknown keys);
//   - each witness key (a C2SP vkey of type 0x04, one per line) must have a valid
//     cosignature/v1 on it, checked here from the C2SP tlog-cosignature spec with crypto/ed25519;
//   - the tiles are read through sumdb/tlog's TileHashReader, which checks every tile it reads
//     against the checkpoint's root (C2SP tile paths are sumdb's without the height element:
//     tile/8/L/N -> tile/L/N), and an inclusion proof of entry INDEX, whose bytes come from
//     the entry bundle (uint16 length-prefixed), is built by tlog and checked.
//
// It prints "ok: ..." and exits 0 when everything holds; otherwise it says what failed and exits 1.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func read(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return data
}

// c2spPath maps a sumdb tile path (tile/8/L/N[.p/W], tile/8/data/N) to the C2SP layout.
func c2spPath(t tlog.Tile) string {
	p := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
	return strings.Replace(p, "tile/data/", "tile/entries/", 1)
}

type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := os.ReadFile(filepath.Join(d.dir, c2spPath(t)))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (d dirTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// checkCosignature verifies the cosignature/v1 line of the witness with this 0x04 vkey.
func checkCosignature(vkey string, text string, sigLines []string) string {
	parts := strings.SplitN(strings.TrimSpace(vkey), "+", 3)
	if len(parts) != 3 {
		fail("witness vkey %q", vkey)
	}
	name := parts[0]
	key, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(key) != 33 || key[0] != 0x04 {
		fail("witness vkey %q is not type 0x04", vkey)
	}
	public := ed25519.PublicKey(key[1:])
	digest := sha256.Sum256(append([]byte(name+"\n\x04"), public...))
	if fmt.Sprintf("%x", digest[:4]) != parts[1] {
		fail("witness vkey %q: key id is not SHA-256(name || \\n || 0x04 || key)[:4]", vkey)
	}
	for _, line := range sigLines {
		fields := strings.Fields(strings.TrimPrefix(line, "— "))
		if len(fields) != 2 || fields[0] != name {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(fields[1])
		if err != nil || len(sig) != 4+8+64 || !bytes.Equal(sig[:4], digest[:4]) {
			continue
		}
		timestamp := binary.BigEndian.Uint64(sig[4:12])
		message := fmt.Sprintf("cosignature/v1\ntime %d\n", timestamp) + text
		if !ed25519.Verify(public, []byte(message), sig[12:]) {
			fail("cosignature by %s does not verify", name)
		}
		return name
	}
	fail("no cosignature by %s", name)
	return ""
}

func main() {
	if len(os.Args) != 5 {
		fail("usage: check_witnessed LOG_VKEY WITNESS_VKEYS TILES_DIR INDEX")
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(read(os.Args[1]))))
	if err != nil {
		fail("log verifier key: %v", err)
	}
	dir := os.Args[3]
	raw := read(filepath.Join(dir, "checkpoint"))
	n, err := note.Open(raw, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || lines[0] != verifier.Name() {
		fail("checkpoint body %q", n.Text)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		fail("root hash %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], rootBytes)

	sigLines := strings.Split(strings.TrimSpace(string(raw[len(n.Text)+1:])), "\n")
	var cosigners []string
	for _, vkey := range strings.Split(strings.TrimSpace(string(read(os.Args[2]))), "\n") {
		cosigners = append(cosigners, checkCosignature(vkey, n.Text, sigLines))
	}

	index, err := strconv.ParseInt(os.Args[4], 10, 64)
	if err != nil || index < 0 || index >= size {
		fail("index %q", os.Args[4])
	}
	hashes := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, dirTiles{dir})
	proof, err := tlog.ProveRecord(size, index, hashes)
	if err != nil {
		fail("inclusion proof from the tiles: %v", err)
	}
	// The entry itself, from its bundle: tile/entries/N[.p/W] of the tree of this size.
	bundle := tlog.TileForIndex(8, tlog.StoredHashIndex(0, index))
	bundle.L = -1
	if bundle.N < size/256 {
		bundle.W = 256
	} else {
		bundle.W = int(size % 256)
	}
	data := read(filepath.Join(dir, c2spPath(bundle)))
	var entry []byte
	for i := int64(0); i <= index%256; i++ {
		if len(data) < 2 {
			fail("entry bundle %s is truncated", c2spPath(bundle))
		}
		length := int(binary.BigEndian.Uint16(data[:2]))
		entry, data = data[2:2+length], data[2+length:]
	}
	if err := tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(entry)); err != nil {
		fail("inclusion of entry %d: %v", index, err)
	}
	fmt.Printf("ok: signature by %s, cosigned by %s, tiles of %d leaves, entry %d included\n",
		verifier.Name(), strings.Join(cosigners, ", "), size, index)
}
