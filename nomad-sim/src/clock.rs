//! The simulated clock: real time by default, faster for long schedules (`--clock-speed 60`
//! makes a minute pass every second). Every time the simulator shows or acts on is read here.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

#[derive(Clone, Debug)]
pub struct Clock {
    started_real: Instant,
    started_sim: DateTime<Utc>,
    speed: f64,
}

impl Clock {
    pub fn new(speed: f64) -> Clock {
        Clock {
            started_real: Instant::now(),
            started_sim: Utc::now(),
            speed: speed.max(0.001),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = self.started_real.elapsed().as_secs_f64() * self.speed;
        self.started_sim + chrono::Duration::nanoseconds((elapsed * 1e9) as i64)
    }

    pub fn now_nanos(&self) -> i64 {
        self.now().timestamp_nanos_opt().unwrap_or_default()
    }

    /// How long to wait in real time for `sim` to pass on the simulated clock.
    pub fn real_duration(&self, sim: Duration) -> Duration {
        sim.div_f64(self.speed)
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }
}

/// Parses a Go duration (`10s`, `5m`, `500ms`, `1m30s`).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("ten"), None);
        assert_eq!(parse_go_duration("10"), None);
    }
}
