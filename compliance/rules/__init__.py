"""One module per family of rules; a rule's id finds its code (grep the id).

| module | rules |
|---|---|
| calls.py | CALL-HOURS, CALL-DAYS, CAMPAIGN-SHAPE, WEEKEND-DAYS, FIRST-CALL-WEEKDAY |
| attempts.py | NUMBERS-MAX, NUMBERS-ALL, ATTEMPTS-MIN, ATTEMPTS-VARIED, ATTEMPTS-NONWEEKDAY, COMPLETION-BASIS, STOP-HONOURED, RING-35, VOICEMAIL-MESSAGE, CALLBACK-APPOINTMENT, RECORD-EVERY-CALL, OUTCOME-HAS-CALL, MOBILE-ASKED, ESCALATION-REQUIRED, UNSUITABLE-NOT-CALLED |
| lines.py | AFTER-HOURS-GUIDE, CALLBACK-QUEUE, CALLERID-LINES, CALLERID-LANDLINE |
| sms.py | SMS-DESIGNATED, SMS-FREQUENCY, SMS-LOOKUP, SMS-REASSIGNED, SMS-SENDER |
| reports.py | REPORT-DAILY, REPORT-SMS, REPORT-MONTHLY, REPORT-SMS-CANDIDATES |
| custody.py | CUSTODY-ORDER, CUSTODY-DEADLINE, CUSTODY-PERSON, ACCESS-LOGGED, DESIGNATED-ACTOR |
| staff.py | SCRIPT-APPROVED, STAFF-READY |
"""

from . import attempts, calls, custody, lines, reports, sms, staff
from .registry import RULES, Rule, rule

__all__ = ["RULES", "Rule", "attempts", "calls", "custody", "lines", "reports", "rule", "sms", "staff"]
