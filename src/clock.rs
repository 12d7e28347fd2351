//! Where the service reads the time and waits for it: the system clock, or a
//! clock a test sets and steps.
//!
//! Every wait of the service (the next tick, the next collection, a janitor's
//! next run, a hook's retry) goes through [`Clock::sleep_until`], so that a
//! test with a [`ManualClock`] moves the whole service forward by advancing
//! the clock, without sleeping.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::duration::Millis;

/// A future returned by [`Clock::sleep_until`].
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Milliseconds since the Unix epoch, as the service sees them.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;

    /// Resolves once [`Clock::now`] reads `at` or later.
    fn sleep_until(&self, at: Millis) -> Sleep<'_>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

/// The longest a [`SystemClock`] sleeps before reading the wall clock again.
/// Timers run on the monotonic clock, which stops while the machine is
/// suspended and ignores changes of the wall clock; reading the wall clock
/// every second bounds how late a sleep ends after either.
const WALL_CLOCK_CHECK: Duration = Duration::from_secs(1);

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as Millis)
            .unwrap_or(0)
    }

    fn sleep_until(&self, at: Millis) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                let now = self.now();
                if now >= at {
                    return;
                }
                let left = Duration::from_millis(u64::try_from(at - now).unwrap_or(u64::MAX));
                tokio::time::sleep(left.min(WALL_CLOCK_CHECK)).await;
            }
        })
    }
}

/// A clock that only moves when told to; its sleepers wake when it does.
#[derive(Debug)]
pub struct ManualClock(watch::Sender<Millis>);

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new(0)
    }
}

impl ManualClock {
    pub fn new(now: Millis) -> Self {
        ManualClock(watch::Sender::new(now))
    }

    /// Sets the time; it may go back (the service must cope with that too).
    pub fn set(&self, now: Millis) {
        self.0.send_replace(now);
    }

    pub fn advance(&self, by: Millis) {
        self.0.send_modify(|now| *now = now.saturating_add(by));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        *self.0.borrow()
    }

    fn sleep_until(&self, at: Millis) -> Sleep<'_> {
        let mut now = self.0.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, which outlives this future.
            let _ = now.wait_for(|now| *now >= at).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_its_sleepers_when_advanced() {
        let clock = std::sync::Arc::new(ManualClock::new(1_000));
        let sleeper = clock.clone();
        let woke = tokio::spawn(async move {
            sleeper.sleep_until(5_000).await;
            sleeper.now()
        });
        tokio::task::yield_now().await;
        clock.advance(3_000);
        tokio::task::yield_now().await;
        assert!(!woke.is_finished(), "4,000 is before 5,000");
        clock.advance(2_000);
        assert_eq!(woke.await.unwrap(), 6_000);
        // A time already past does not wait.
        clock.sleep_until(10).await;
    }

    #[tokio::test]
    async fn the_system_clock_sleeps_until_the_time() {
        let clock = SystemClock;
        let at = clock.now() + 30;
        clock.sleep_until(at).await;
        assert!(clock.now() >= at);
    }
}
