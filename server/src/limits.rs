//! Per-token rate limits: a token bucket per key, refilled continuously.
//!
//! A phone on a flaky link retries; a buggy app retries in a loop. The bucket lets the
//! first through and answers the loop with `429` and `Retry-After`, so one device can
//! never starve the 199 others of a small server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets keyed by token key.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` requests per key per minute, with bursts up to `burst`. 0 disables.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `key`; `Err(seconds)` to wait when the bucket is empty.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        if self.per_minute <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 600);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        let refill = now.duration_since(*at).as_secs_f64() * self.per_minute / 60.0;
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) * 60.0 / self.per_minute).ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_key_waits_while_others_pass() {
        let l = RateLimiter::new(60, 3);
        assert!(l.check("a").is_ok() && l.check("a").is_ok() && l.check("a").is_ok());
        assert_eq!(l.check("a"), Err(1));
        assert!(l.check("b").is_ok());
        assert!(RateLimiter::new(0, 1).check("a").is_ok());
    }
}
