//! Korean time (KST, UTC+9, no daylight saving) for the night-time
//! advertising ban and NHN's date strings.

/// KST's offset from UTC, in milliseconds.
pub const OFFSET_MS: i64 = 9 * 60 * 60 * 1000;
/// The ban starts at 20:50 KST (minutes after midnight).
pub const NIGHT_BAN_START_MINUTE: u32 = 20 * 60 + 50;
/// The ban ends at 08:00 KST.
pub const NIGHT_BAN_END_MINUTE: u32 = 8 * 60;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The KST wall-clock parts of a Unix time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// Year.
    pub year: i64,
    /// Month, 1–12.
    pub month: u32,
    /// Day, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
    /// Second, 0–59.
    pub second: u32,
}

impl Local {
    /// The KST time of `unix_ms`.
    pub fn of(unix_ms: i64) -> Self {
        let local = unix_ms + OFFSET_MS;
        let days = local.div_euclid(DAY_MS);
        let into_day = local.rem_euclid(DAY_MS) / 1000;
        let (year, month, day) = civil_from_days(days);
        // into_day < 86,400, so these fit.
        let seconds = u32::try_from(into_day).unwrap_or(0);
        Self {
            year,
            month,
            day,
            hour: seconds / 3600,
            minute: seconds / 60 % 60,
            second: seconds % 60,
        }
    }

    /// Minutes after local midnight.
    pub fn minute_of_day(self) -> u32 {
        self.hour * 60 + self.minute
    }

    /// `yyyy-MM-dd HH:mm:ss`, NHN's date format.
    pub fn datetime(self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `yyyyMMddHHmmss`, the start of NHN request ids.
    pub fn compact(self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Whether Brand Messages are banned at `unix_ms` (20:50–08:00 KST).
pub fn in_night_ban(unix_ms: i64) -> bool {
    let minute = Local::of(unix_ms).minute_of_day();
    !(NIGHT_BAN_END_MINUTE..NIGHT_BAN_START_MINUTE).contains(&minute)
}

/// Seconds to add to the system clock so that it reads `hour:minute` KST
/// next (today or tomorrow; rounded up, so the clock lands on or just
/// after the minute), for moving the simulated clock into or out of the
/// night ban.
pub fn offset_to_next(now_unix_ms: i64, hour: u32, minute: u32) -> i64 {
    let local = now_unix_ms + OFFSET_MS;
    let into_day = local.rem_euclid(DAY_MS);
    let target = i64::from(hour * 60 + minute) * 60_000;
    let wait = (target - into_day).rem_euclid(DAY_MS);
    (wait + 999) / 1000
}

/// Year, month and day of a count of days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-10 12:00:00 UTC = 21:00 KST.
    const NINE_PM_KST: i64 = 1_794_312_000_000;

    #[test]
    fn korean_wall_clock() {
        let local = Local::of(NINE_PM_KST);
        assert_eq!(local.datetime(), "2026-11-10 21:00:00");
        assert_eq!(local.compact(), "20261110210000");
        assert_eq!(Local::of(0).datetime(), "1970-01-01 09:00:00");
        // 2024-02-29 23:59:59 KST.
        assert_eq!(
            Local::of(1_709_218_799_000).datetime(),
            "2024-02-29 23:59:59"
        );
    }

    #[test]
    fn night_ban_edges() {
        let minute = 60_000;
        assert!(in_night_ban(NINE_PM_KST));
        assert!(in_night_ban(NINE_PM_KST - 10 * minute), "20:50");
        assert!(!in_night_ban(NINE_PM_KST - 11 * minute), "20:49");
        assert!(
            in_night_ban(NINE_PM_KST + 11 * 60 * minute - minute),
            "07:59"
        );
        assert!(!in_night_ban(NINE_PM_KST + 11 * 60 * minute), "08:00");
    }

    #[test]
    fn offsets_to_a_wall_clock_time() {
        assert_eq!(offset_to_next(NINE_PM_KST, 23, 0), 2 * 3600);
        assert_eq!(offset_to_next(NINE_PM_KST, 14, 0), 17 * 3600);
        assert_eq!(offset_to_next(NINE_PM_KST, 21, 0), 0);
    }
}
