#!/usr/bin/env python3
"""Generate the demo's synthetic win-back audience (examples/winback/audience.csv).

Deterministic (fixed seed). Mixed countries, mostly valid mobile numbers
(checked with the `phonenumbers` package, a port of libphonenumber), some
without consent, some invalid numbers, some written in national format with
a country column. Also writes examples/winback/open_windows.txt: the numbers
of customers who wrote in recently, whose windows the demo opens through the
simulator before the campaign runs.

    pip install phonenumbers && python3 scripts/gen_audience.py
"""
import csv
import random

import phonenumbers

random.seed(20261127)
COUNT = 3000
COUNTRIES = [  # (region, weight, mobile prefixes after the country code, subscriber digits)
    ("DE", 20, ["151", "152", "160", "170", "171", "176"], 8),
    ("BR", 20, ["119", "219", "319"], 8),
    ("IN", 20, ["98", "99", "97", "90"], 8),
    ("MX", 10, ["155", "333", "818"], 7),
    ("GB", 10, ["7700", "7911", "7400"], 6),
    ("ES", 8, ["6"], 8),
    ("ZA", 6, ["82", "83", "72"], 7),
    ("ID", 6, ["812", "813", "821"], 8),
]
FIRST = ["Ana", "Ben", "Chen", "Divya", "Elif", "Femi", "Gabriel", "Hana", "Ivan", "Jana", "Kofi",
         "Lucia", "Mateo", "Nadia", "Omar", "Priya", "Rafael", "Sofia", "Tomás", "Uma", "Yusuf", "Zoe"]


def mobile(region, prefixes, digits):
    code = phonenumbers.country_code_for_region(region)
    for _ in range(1000):
        national = random.choice(prefixes) + "".join(random.choice("0123456789") for _ in range(digits))
        number = phonenumbers.parse(f"+{code}{national}")
        if phonenumbers.is_valid_number(number):
            return number
    raise SystemExit(f"no valid number found for {region}")


def main():
    regions = [c for c in COUNTRIES for _ in range(c[1])]
    rows, windows = [], []
    for i in range(1, COUNT + 1):
        region, _, prefixes, digits = random.choice(regions)
        number = mobile(region, prefixes, digits)
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        phone = e164
        roll = random.random()
        if roll < 0.15:  # national format: needs the country column
            phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        elif roll < 0.17:  # broken numbers from a careless import
            phone = random.choice(["+49 123", "0000", "+55 11 1234", "n/a", "+91 12345"])
        consent = random.choices(["yes", "no", ""], weights=[86, 9, 5])[0]
        rows.append({
            "profile_id": f"cust-{i:05d}",
            "name": random.choice(FIRST),
            "country": region,
            "phone": phone,
            "consent_whatsapp_marketing": consent,
            "lapse_risk": f"{random.uniform(0.7, 1.0):.2f}",
        })
        if phone == e164 and consent == "yes" and random.random() < 0.1:
            windows.append(e164)
    with open("examples/winback/audience.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:1500])
        # Rows a careless export produces: too few fields, and a duplicate id.
        out.write("cust-broken,Truncated,DE\r\n")
        writer.writerow(dict(rows[0], name="Duplicate"))
        writer.writerows(rows[1500:])
    with open("examples/winback/open_windows.txt", "w") as out:
        out.write("\n".join(windows) + "\n")
    print(f"{len(rows)} profiles, {len(windows)} open windows")


if __name__ == "__main__":
    main()
