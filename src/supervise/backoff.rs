//! When to restart a service that exited, as a pure function of how long its
//! last run lasted and how many restarts came before it.
//!
//! - A run of 10 s or more resets the count: the restart is immediate.
//! - The first restart after a run of at least 1 s is immediate.
//! - Every other restart waits 0.1 s, doubling with each further restart, up to
//!   service_restart_backoff_max.
//!
//! So a program that crashes after 1 s runs at most 9 times in 15 s, and one that
//! crashes at once costs a start every 30 s once the backoff has grown.

use std::time::Duration;

/// A run this long resets the count.
pub const RESET_AFTER: Duration = Duration::from_secs(10);
/// The first restart after a run this long is immediate.
pub const IMMEDIATE_AFTER: Duration = Duration::from_secs(1);
/// The first delay.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);

/// The delay before the next start, and the new count of restarts since the last
/// reset. `streak` is that count before this restart.
pub fn next_delay(run: Duration, streak: u32, max: Duration) -> (Duration, u32) {
    let streak = if run >= RESET_AFTER { 0 } else { streak };
    if streak == 0 && run >= IMMEDIATE_AFTER {
        return (Duration::ZERO, 1);
    }
    let doublings = streak.saturating_sub(1).min(30);
    let delay = FIRST_DELAY.saturating_mul(1 << doublings).min(max);
    (delay, streak.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(30);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_restart_after_a_long_enough_run_is_immediate() {
        assert_eq!(next_delay(ms(1000), 0, MAX), (Duration::ZERO, 1));
        assert_eq!(next_delay(ms(5000), 0, MAX), (Duration::ZERO, 1));
    }

    #[test]
    fn short_runs_wait_doubling_delays_up_to_the_maximum() {
        let mut streak = 0;
        let mut delays = Vec::new();
        for _ in 0..12 {
            let (delay, next) = next_delay(ms(10), streak, MAX);
            delays.push(delay.as_millis());
            streak = next;
        }
        assert_eq!(
            delays,
            [
                100, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000
            ]
        );
        // A small maximum caps the first delay too.
        assert_eq!(next_delay(ms(10), 0, ms(50)).0, ms(50));
    }

    #[test]
    fn a_run_of_ten_seconds_resets_the_count() {
        let (_, streak) = next_delay(ms(10), 7, MAX);
        assert_eq!(streak, 8);
        assert_eq!(next_delay(RESET_AFTER, streak, MAX), (Duration::ZERO, 1));
        // 9.9 s is not enough.
        assert_eq!(next_delay(ms(9900), 3, MAX).0, ms(400));
    }

    #[test]
    fn a_program_crashing_after_one_second_runs_at_most_nine_times_in_fifteen() {
        let run = ms(1000);
        let (mut t, mut streak, mut runs) = (Duration::ZERO, 0, 0);
        while t < Duration::from_secs(15) {
            runs += 1;
            t += run;
            let (delay, next) = next_delay(run, streak, MAX);
            t += delay;
            streak = next;
        }
        assert!(runs <= 9, "{runs} runs in 15 s");
        assert!(runs >= 5, "{runs} runs in 15 s: backoff too eager");
    }

    #[test]
    fn huge_streaks_do_not_overflow() {
        assert_eq!(next_delay(ms(1), u32::MAX, MAX), (MAX, u32::MAX));
    }
}
