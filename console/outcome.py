"""The outcome form: what the operator may record for a call, checked all at once.

Field names are those of events.md (`party`, `proxy_consent`, `script`,
`disposition`, `promise_date`, `promise_amount`, `callback_at`, `mobile_asked`,
`requests`), so a script can drive the console over plain HTTP. Every error is
in Japanese and names its field; a form with any error writes nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from compliance import present
from contract.calendar import TOKYO

PARTIES = {
    "self": "本人",
    "household": "家族等（同居の方）",
    "other": "本人・家族以外",
    "none": "応答なし・留守番電話",
}
SCRIPTS = {"completed": "最後まで完了", "incomplete": "途中まで", "not_started": "未実施"}
DISPOSITIONS = {
    "completed": "完了（説明を最後まで伝えた）",
    "refused": "拒否（話を聞いてもらえない）",
    "absent_long": "長期不在・居住していない",
    "number_unusable": "番号が使えない（別人宅・FAX等）",
    "stopped": "市の指示で停止",
    "no_contact": "不通（留守電・応答なし）",
    "absent_now": "不在（本人が外出中）",
}
REQUESTS = {
    code: present.WORDS["request"][code]
    for code in ("installment", "refusal", "tax_dispute", "complaint", "stop_contact")
}
REACHED = ("self", "household")
# A promised amount in yen: ASCII digits once normalised, at most 10 (under 10 billion yen), so
# that int() takes it and the ledger's integer range holds it ('²' and 5000 nines were a 500,
# 20 nines an event the ledger refuses).
AMOUNT = re.compile(r"[0-9]{1,10}")
# A resident's callback (callback.outcome, docs/events.md): キ lets it end a case only as ア/イ.
CALLBACK_DISPOSITIONS = {
    "completed": "完了（ご本人か承諾を得た家族等に説明を最後まで伝えた）",
    "no_contact": "未完了（説明を最後まで伝えられなかった）",
    "absent_now": "本人に伝わっていない（本人以外の方からの電話）",
}


@dataclass
class OutcomeForm:
    """The posted form, as given (strings), for re-showing it with its errors."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] | None = None  # the call.outcome data, when there is no error


def _checkbox(raw: Any) -> bool:
    return raw in ("1", "on", "true", "yes")


def check_outcome(
    form: dict[str, Any],
    *,
    case: str,
    call: str,
    voicemail: bool,
    landline_only: bool,
    last_step: int,
    now: datetime,
    in_period: Callable[[datetime], bool],
) -> OutcomeForm:
    """`form`: field -> str, except `requests` and `step`: lists of str."""
    values = {k: v for k, v in form.items() if k != "csrf"}
    errors: dict[str, str] = {}
    today = now.astimezone(TOKYO).date()

    party = form.get("party", "")
    if party not in PARTIES:
        errors["party"] = "通話の相手を選んでください。"
    if voicemail and party not in ("", "none"):
        errors["party"] = "留守番電話の通話では「応答なし・留守番電話」を選んでください。"
    proxy_consent = _checkbox(form.get("proxy_consent"))
    if proxy_consent and party != "household":
        errors["proxy_consent"] = "伝言の承諾は、家族等が出た場合だけ記録できます。"

    steps = sorted({int(s) for s in form.get("step", []) if str(s).isdigit()})
    script = form.get("script") or (
        "completed" if last_step and last_step in steps else "incomplete" if steps else "not_started"
    )
    if script not in SCRIPTS:
        errors["script"] = "トークスクリプトの実施状況を選んでください。"
    elif script == "completed" and last_step not in steps:
        errors["script"] = (
            f"トークスクリプトの最後の手順（{last_step}）に達していないため「最後まで完了」にはできません。"
        )

    disposition = form.get("disposition", "")
    if disposition not in DISPOSITIONS:
        errors["disposition"] = "結果を選んでください。"
    elif disposition == "completed":
        if script != "completed":
            errors["disposition"] = "「完了」はトークスクリプトを最後まで伝えた場合だけ選べます。"
        elif party == "household" and not proxy_consent:
            errors["disposition"] = "家族等への「完了」には、伝言を引き受ける承諾が必要です。"
        elif party not in REACHED:
            errors["disposition"] = "「完了」は本人か、承諾を得た家族等と話した場合だけ選べます。"
    elif disposition == "absent_now" and party not in ("household", "other"):
        errors["disposition"] = "「不在」は本人以外の方が出た場合に選びます。"
    if voicemail and disposition not in ("", "no_contact"):
        errors["disposition"] = "留守番電話の通話は「不通」です。"

    promise = None
    raw_date = str(form.get("promise_date", "")).strip()
    # full-width digits and commas as typed with a Japanese IME; ASCII digits after that
    raw_amount = unicodedata.normalize("NFKC", str(form.get("promise_amount", ""))).strip().replace(",", "")
    if raw_date or raw_amount:
        if party not in REACHED:
            errors["promise_date"] = "納付の約束は、本人か家族等と話した場合だけ記録できます。"
        promise_date: date | None = None
        if not raw_date:
            errors["promise_date"] = "納付予定日を入力してください。"
        else:
            try:
                promise_date = date.fromisoformat(raw_date)
            except ValueError:
                errors["promise_date"] = "納付予定日は「2026-09-30」の形で入力してください。"
            else:
                if promise_date < today:
                    errors["promise_date"] = "納付予定日が過去の日付です。"
        amount = None
        if not raw_amount:
            errors["promise_amount"] = "納付の約束には金額が必要です。"
        elif not AMOUNT.fullmatch(raw_amount) or int(raw_amount) <= 0:
            errors["promise_amount"] = "金額は1円以上の整数（円）で入力してください。"
        else:
            amount = int(raw_amount)
        if promise_date is not None and amount is not None and "promise_date" not in errors:
            promise = {"date": promise_date.isoformat(), "amount": amount}

    callback_at = None
    raw_callback = str(form.get("callback_at", "")).strip()
    if raw_callback:
        try:
            moment = datetime.fromisoformat(raw_callback)
            moment = moment.replace(tzinfo=TOKYO) if moment.tzinfo is None else moment.astimezone(TOKYO)
        except (ValueError, OverflowError):  # OverflowError: year 9999 with an offset west of Tokyo
            errors["callback_at"] = "折り返しの日時が読めません。"
        else:
            if moment <= now:
                errors["callback_at"] = "折り返しの日時が過去です。"
            elif not in_period(moment) and not _checkbox(form.get("escalate_callback")):
                errors["callback_at"] = (
                    "架電期間・時間外の日時です。このまま記録するには「管理者へエスカレーション」に"
                    "チェックを入れてください（市の担当者へ引き継ぎます）。"
                )
            callback_at = moment.isoformat()

    mobile_asked = _checkbox(form.get("mobile_asked"))
    if landline_only and party in REACHED and not mobile_asked and not voicemail:
        errors["mobile_asked"] = "固定電話だけの案件です。携帯電話の番号を伺い、チェックを入れてください。"

    requests = list(dict.fromkeys(form.get("requests", [])))
    if any(r not in REQUESTS for r in requests):
        errors["requests"] = "申し出の種類が正しくありません。"
    elif requests and party not in REACHED and party != "other":
        errors["requests"] = "申し出は、通話できた場合だけ記録できます。"

    result = OutcomeForm(values, errors)
    if not errors:
        result.data = {
            "case": case,
            "call": call,
            "party": party,
            "proxy_consent": proxy_consent,
            "script": script,
            "disposition": disposition,
            "promise": promise,
            "callback_at": callback_at,
            "mobile_asked": mobile_asked,
            "requests": requests,
        }
    return result


def check_callback_outcome(
    form: dict[str, Any], *, case: str, call: str, landline_only: bool, last_step: int, now: datetime
) -> OutcomeForm:
    """The outcome of a resident's callback: the call's form and checks (COMPLETION-BASIS,
    MOBILE-ASKED, the promise, the requests), someone on the line (no `none`), one of the
    callback's dispositions, and no callback time (docs/events.md `callback.outcome`)."""
    checked = check_outcome(
        form,
        case=case,
        call=call,
        voicemail=False,
        landline_only=landline_only,
        last_step=last_step,
        now=now,
        in_period=lambda _moment: True,
    )
    errors = checked.errors
    if form.get("party") == "none":
        errors["party"] = "折り返し電話では、電話をくださった方を選んでください。"
    disposition = form.get("disposition", "")
    if disposition in DISPOSITIONS and disposition not in CALLBACK_DISPOSITIONS and "disposition" not in errors:
        errors["disposition"] = "折り返し電話で記録できる結果は「完了」「未完了」「本人に伝わっていない」だけです。"
    if str(form.get("callback_at", "")).strip():
        errors["callback_at"] = "折り返し電話では日時の約束は記録しません。改めてお電話いただくようご案内ください。"
    if errors or checked.data is None:
        checked.data = None
        return checked
    checked.data = {k: v for k, v in checked.data.items() if k != "callback_at"}
    return checked
