//! The local first line: a governor limiter per WebSocket connection on every op, checked before
//! any Redis or MongoDB work, so one socket cannot hammer the backends.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::AntispamSettings;

pub(crate) struct LocalLimiter {
    /// None for exempt users (never throttled).
    limiter: Option<DefaultDirectRateLimiter>,
    refused_in_a_row: u32,
    close_after: u32,
}

pub(crate) enum Verdict {
    Pass,
    /// Refused; retry after this many whole seconds (at least 1).
    Refuse {
        retry_after_secs: u64,
    },
    /// Refused too many times in a row: close the socket.
    Close,
}

impl LocalLimiter {
    pub(crate) fn new(settings: &AntispamSettings, exempt: bool) -> Self {
        let per_sec = NonZeroU32::new(settings.local_per_sec.get()).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.local_burst.get()).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: (!exempt)
                .then(|| RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst))),
            refused_in_a_row: 0,
            close_after: settings.local_close_after.get(),
        }
    }

    pub(crate) fn check(&mut self) -> Verdict {
        let Some(limiter) = &self.limiter else {
            return Verdict::Pass;
        };
        match limiter.check() {
            Ok(()) => {
                self.refused_in_a_row = 0;
                Verdict::Pass
            }
            Err(not_until) => {
                self.refused_in_a_row += 1;
                if self.refused_in_a_row >= self.close_after {
                    return Verdict::Close;
                }
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Verdict::Refuse {
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            }
        }
    }
}
