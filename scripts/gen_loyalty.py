#!/usr/bin/env python3
"""Generate the demo's loyalty-update audience (examples/loyalty/audience.csv).

Deterministic. Profiles spread over the five platforms: Korean numbers with
KakaoTalk consent (and RCS as the fall-back), LINE users in Japan and
Thailand, WeChat followers in China, WhatsApp users in Brazil, India and
Germany, and RCS users in the United States. Phone numbers are checked with
`phonenumbers` (a port of libphonenumber). Also writes
examples/loyalty/not_on_kakaotalk.txt: Korean numbers the simulated dealer
reports as not KakaoTalk users (3019), which the host sends on by RCS.

    pip install phonenumbers && python3 scripts/gen_loyalty.py
"""
import csv
import random
import string

import phonenumbers

random.seed(20261128)
FIRST = ["Minji", "Jisoo", "Haruto", "Yui", "Somchai", "Ploy", "Wei", "Li Na", "Ana", "Rafael",
         "Priya", "Jonas", "Emily", "Jacob"]
COLUMNS = ["profile_id", "name", "country", "phone", "line_id", "wechat_openid", "points",
           "consent_kakaotalk_utility", "consent_line_utility", "consent_wechat_utility",
           "consent_whatsapp_utility", "consent_rcs_utility"]


def phone(region, prefixes, digits):
    code = phonenumbers.country_code_for_region(region)
    while True:
        national = random.choice(prefixes) + "".join(random.choice(string.digits) for _ in range(digits))
        number = phonenumbers.parse(f"+{code}{national}")
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def row(i, country, **fields):
    base = {c: "" for c in COLUMNS}
    base.update(profile_id=f"loyal-{i:04d}", name=random.choice(FIRST), country=country,
                points=str(random.randrange(100, 20000, 10)))
    base.update(fields)
    return base


def main():
    rows, not_on_kakaotalk = [], []
    i = 0
    for _ in range(120):  # Korea: KakaoTalk first, RCS as the fall-back
        i += 1
        number = phone("KR", ["10"], 8)
        rows.append(row(i, "KR", phone=number, consent_rcs_utility="yes",
                        consent_kakaotalk_utility=random.choices(["yes", "no"], [92, 8])[0]))
        if random.random() < 0.08:
            not_on_kakaotalk.append(number)
    for _ in range(120):  # LINE in Japan and Thailand
        i += 1
        rows.append(row(i, random.choice(["JP", "TH"]), line_id="U" + "".join(random.choice("0123456789abcdef") for _ in range(32)),
                        consent_line_utility=random.choices(["yes", ""], [94, 6])[0]))
    for _ in range(80):  # WeChat followers in China
        i += 1
        rows.append(row(i, "CN", wechat_openid="o" + "".join(random.choice(string.ascii_letters + string.digits + "_-") for _ in range(27)),
                        consent_wechat_utility="yes"))
    for _ in range(100):  # WhatsApp
        i += 1
        region, prefixes, digits = random.choice([("BR", ["119", "219"], 8), ("IN", ["98", "99"], 8), ("DE", ["151", "176"], 8)])
        rows.append(row(i, region, phone=phone(region, prefixes, digits), consent_whatsapp_utility="yes"))
    for _ in range(80):  # RCS in the United States
        i += 1
        rows.append(row(i, "US", phone=phone("US", ["212", "415", "646"], 7), consent_rcs_utility="yes"))
    random.shuffle(rows)
    with open("examples/loyalty/audience.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with open("examples/loyalty/not_on_kakaotalk.txt", "w") as out:
        out.write("\n".join(not_on_kakaotalk) + "\n")
    print(f"{len(rows)} profiles, {len(not_on_kakaotalk)} Korean numbers not on KakaoTalk")


if __name__ == "__main__":
    main()
