// An independent check of a Kansa ledger with Go's golang.org/x/mod/sumdb/note
// and sumdb/tlog (Debian's golang-golang-x-mod-dev), none of Kansa's code.
//
// Usage: check_with_go VKEY_FILE CHECKPOINT_FILE EXPORT_JSONL PROOFS_JSONL
// It prints "ok: ..." and exits 0 when everything holds; otherwise it says what
// failed and exits 1.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
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

func hashOf(text string) tlog.Hash {
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(raw) != tlog.HashSize {
		fail("bad hash %q", text)
	}
	var h tlog.Hash
	copy(h[:], raw)
	return h
}

func main() {
	if len(os.Args) != 5 {
		fail("usage: check_with_go VKEY CHECKPOINT EXPORT PROOFS")
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(read(os.Args[1]))))
	if err != nil {
		fail("verifier key: %v", err)
	}
	n, err := note.Open(read(os.Args[2]), note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || lines[0] != verifier.Name() {
		fail("checkpoint body %q", n.Text)
	}
	root := hashOf(lines[2])

	// Re-hash every exported leaf into the stored hashes of a tlog tree.
	var stored []tlog.Hash
	leaves := map[int64]tlog.Hash{}
	scanner := bufio.NewScanner(strings.NewReader(string(read(os.Args[3]))))
	scanner.Buffer(make([]byte, 1<<20), 1<<26)
	var count int64
	for scanner.Scan() {
		var entry struct {
			Index int64  `json:"index"`
			Leaf  string `json:"leaf"`
		}
		if err := json.Unmarshal(scanner.Bytes(), &entry); err != nil {
			fail("export line: %v", err)
		}
		if entry.Index != count {
			fail("export: index %d where %d was expected", entry.Index, count)
		}
		leaf, err := base64.StdEncoding.DecodeString(entry.Leaf)
		if err != nil {
			fail("leaf %d: %v", entry.Index, err)
		}
		leaves[count] = tlog.RecordHash(leaf)
		more, err := tlog.StoredHashes(count, leaf, tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(indexes))
			for i, x := range indexes {
				out[i] = stored[x]
			}
			return out, nil
		}))
		if err != nil {
			fail("stored hashes: %v", err)
		}
		stored = append(stored, more...)
		count++
	}
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			out[i] = stored[x]
		}
		return out, nil
	})
	if count < size {
		fail("export has %d entries, the checkpoint %d", count, size)
	}
	computed, err := tlog.TreeHash(size, reader)
	if err != nil || computed != root {
		fail("tree hash of the first %d leaves is %v, the checkpoint says %v", size, computed, root)
	}

	// Check Kansa's own proofs with tlog.
	proofs := bufio.NewScanner(strings.NewReader(string(read(os.Args[4]))))
	checked := 0
	for proofs.Scan() {
		var p struct {
			Index  *int64   `json:"index"`
			Size   int64    `json:"size"`
			Old    int64    `json:"old"`
			New    int64    `json:"new"`
			Hashes []string `json:"hashes"`
		}
		if err := json.Unmarshal(proofs.Bytes(), &p); err != nil {
			fail("proof line: %v", err)
		}
		var hashes []tlog.Hash
		for _, h := range p.Hashes {
			hashes = append(hashes, hashOf(h))
		}
		if p.Index != nil {
			th, _ := tlog.TreeHash(p.Size, reader)
			if err := tlog.CheckRecord(tlog.RecordProof(hashes), p.Size, th, *p.Index, leaves[*p.Index]); err != nil {
				fail("inclusion proof of %d in %d: %v", *p.Index, p.Size, err)
			}
		} else {
			oldH, _ := tlog.TreeHash(p.Old, reader)
			newH, _ := tlog.TreeHash(p.New, reader)
			if err := tlog.CheckTree(tlog.TreeProof(hashes), p.New, newH, p.Old, oldH); err != nil {
				fail("consistency proof %d -> %d: %v", p.Old, p.New, err)
			}
		}
		checked++
	}
	fmt.Printf("ok: signature by %s, tree of %d leaves, %d proofs\n", verifier.Name(), size, checked)
}
