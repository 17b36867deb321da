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
