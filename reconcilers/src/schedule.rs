//! When a cron schedule fires next, in its time zone.

use std::str::FromStr;

use chrono::{DateTime, Utc};

/// The first run strictly after `after`, or `None` when the schedule or zone does not parse
/// (validation keeps both from reaching here).
pub fn next_run(schedule: &str, time_zone: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let zone = chrono_tz::Tz::from_str(time_zone).ok()?;
    let cron = croner::Cron::from_str(crds::validate::expand_cron_macro(schedule)).ok()?;
    cron.find_next_occurrence(&after.with_timezone(&zone), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_read_in_their_zone() {
        let noon_utc = DateTime::parse_from_rfc3339("2026-01-15T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // 02:30 in Berlin (UTC+1 in January) is 01:30 UTC.
        let next = next_run("30 2 * * *", "Europe/Berlin", noon_utc).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-01-16T01:30:00+00:00");
        assert_eq!(
            next_run("@daily", "UTC", noon_utc).unwrap().to_rfc3339(),
            "2026-01-16T00:00:00+00:00"
        );
        assert_eq!(next_run("30 2 * * *", "Mars/Olympus", noon_utc), None);
    }
}
