//! Fault injection shared by every platform's API.
//!
//! One [`FaultConfig`] (`GET` / `PUT /_sim/faults`,
//! [`SimulatorHandle::set_faults`](crate::SimulatorHandle::set_faults))
//! applies to all five platforms. Control requests under `/_sim` are never
//! affected.
//!
//! | Field | Default | Applies to | Does |
//! |---|---|---|---|
//! | `latency_ms` | 0 | every platform API request (sends, token endpoints, RCS capability checks) | waits this long *before* processing the request |
//! | `error_rate` | 0.0 | the same | fails this fraction of them, before processing, with the platform's own server error (WhatsApp 500 / 131000, LINE 500, KakaoTalk 500 / -9999, WeChat `errcode` -1, RCS 503 `UNAVAILABLE`) |
//! | `reset_after_accept_rate` | 0.0 | send requests the platform accepted | processes this fraction of them completely (recorded, counted, statuses scheduled, idempotency key / retry key / `messageId` remembered) and then closes the connection with a TCP reset, without writing a status line: the client gets an I/O error, never a response |
//! | `slow_response_ms` | 0 | every send request | processes the request first (an accepted one is recorded) and only then waits this long before answering, so a client timeout fires after the platform acted |
//!
//! Send requests are the message-sending endpoints: WhatsApp
//! `POST /{version}/{phone-number-id}/messages`; LINE
//! `POST /v2/bot/message/push` and `/multicast`; KakaoTalk (NHN)
//! AlimTalk `…/messages`, `…/auth/messages` and Brand Message
//! `…/freestyle-messages`; WeChat `/cgi-bin/message/custom/send` and
//! `/cgi-bin/message/template/send`; RCS `/v1/phones/{phone}/agentMessages`.
//! Token endpoints, RCS capability checks, the retired FriendTalk path and
//! control routes are not send requests.
//!
//! A send request is *accepted* when the platform answered success:
//! WhatsApp 200, LINE 200 (a 409 replay is not), KakaoTalk a header with
//! `isSuccessful: true` (at least one recipient accepted), WeChat
//! `errcode` 0, RCS 200. Rejected send requests are answered normally (after
//! `slow_response_ms`), never reset.
//!
//! Both rates are fractions between 0.0 and 1.0 (1.0 = every request);
//! anything else, including NaN, is refused with [`FaultError`]. Counters
//! of what was injected are in [`FaultStats`] (`GET /_sim/faults/stats`),
//! and each platform's stats count its own `reset_after_accept`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::connection;

/// What faults to inject into platform API requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Fraction of API requests (0.0 to 1.0) that fail with a server error,
    /// before they are processed.
    pub error_rate: f64,
    /// Extra latency added to every API request before it is processed, in
    /// milliseconds.
    pub latency_ms: u64,
    /// Fraction of accepted send requests (0.0 to 1.0) that are processed
    /// and recorded as accepted, and then answered by closing the
    /// connection (TCP reset) without any HTTP response.
    pub reset_after_accept_rate: f64,
    /// Delay, in milliseconds, between processing a send request (an
    /// accepted one is already recorded) and answering it.
    pub slow_response_ms: u64,
}

/// A fault configuration was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// `error_rate` was not a number between 0.0 and 1.0.
    #[error("error_rate must be between 0.0 and 1.0, got {0}")]
    InvalidErrorRate(f64),
    /// `reset_after_accept_rate` was not a number between 0.0 and 1.0.
    #[error("reset_after_accept_rate must be between 0.0 and 1.0, got {0}")]
    InvalidResetAfterAcceptRate(f64),
}

/// What the shared fault injection did (`GET /_sim/faults/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStats {
    /// API requests failed with an injected server error (`error_rate`).
    pub errors_injected: u64,
    /// Accepted send requests answered by resetting the connection
    /// (`reset_after_accept_rate`), on all platforms.
    pub reset_after_accept: u64,
    /// Send replies held back by `slow_response_ms`.
    pub slow_responses: u64,
}

/// The live fault configuration and its counters.
#[derive(Debug, Default)]
pub struct Faults {
    config: Mutex<FaultConfig>,
    errors_injected: AtomicU64,
    reset_after_accept: AtomicU64,
    slow_responses: AtomicU64,
}

impl Faults {
    /// No faults: zero rates, zero delays.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current configuration.
    pub fn get(&self) -> FaultConfig {
        *self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the configuration after checking it.
    pub fn set(&self, config: FaultConfig) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&config.error_rate) {
            return Err(FaultError::InvalidErrorRate(config.error_rate));
        }
        if !(0.0..=1.0).contains(&config.reset_after_accept_rate) {
            return Err(FaultError::InvalidResetAfterAcceptRate(
                config.reset_after_accept_rate,
            ));
        }
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        FaultStats {
            errors_injected: self.errors_injected.load(Ordering::Relaxed),
            reset_after_accept: self.reset_after_accept.load(Ordering::Relaxed),
            slow_responses: self.slow_responses.load(Ordering::Relaxed),
        }
    }

    /// Resets the counters of [`Faults::stats`] to zero (the configuration
    /// is kept).
    pub fn clear_stats(&self) {
        for counter in [
            &self.errors_injected,
            &self.reset_after_accept,
            &self.slow_responses,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Applies the configured latency, then decides whether this request
    /// should fail. Returns `true` when the caller must answer with an
    /// injected server error. Called by every platform API request before
    /// it is processed.
    pub async fn apply(&self) -> bool {
        let config = self.get();
        if config.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(config.latency_ms)).await;
        }
        let fail = chance(config.error_rate);
        if fail {
            self.errors_injected.fetch_add(1, Ordering::Relaxed);
        }
        fail
    }

    /// Finishes a send request the platform has processed completely:
    /// `accepted` says whether it answered success, `reply` is that answer.
    ///
    /// Decides first whether an accepted request's connection is reset
    /// (counted here and in `platform_resets`, the platform's own counter),
    /// then waits `slow_response_ms`, then returns `reply`, or a reply that
    /// makes the server reset the connection without writing anything (a
    /// response marked for the resetting listener the simulator serves
    /// through). Deciding and counting before the wait
    /// keeps the counters right when the client gives up during it.
    pub async fn finish_send(
        &self,
        accepted: bool,
        platform_resets: &AtomicU64,
        reply: Response,
    ) -> Response {
        let config = self.get();
        let reset = accepted && chance(config.reset_after_accept_rate);
        if reset {
            self.reset_after_accept.fetch_add(1, Ordering::Relaxed);
            platform_resets.fetch_add(1, Ordering::Relaxed);
        }
        if config.slow_response_ms > 0 {
            self.slow_responses.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(config.slow_response_ms)).await;
        }
        if reset {
            tracing::debug!("faults: resetting the connection of an accepted send request");
            connection::reset_reply()
        } else {
            reply
        }
    }
}

/// True with probability `rate` (0.0 never, 1.0 always).
fn chance(rate: f64) -> bool {
    rate > 0.0 && rand::random::<f64>() < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(error_rate: f64, reset_after_accept_rate: f64) -> FaultConfig {
        FaultConfig {
            error_rate,
            reset_after_accept_rate,
            ..FaultConfig::default()
        }
    }

    #[test]
    fn rejects_rates_outside_unit_interval() {
        let faults = Faults::new();
        assert!(faults.set(config(1.5, 0.0)).is_err());
        assert!(faults.set(config(f64::NAN, 0.0)).is_err());
        assert!(
            faults
                .set(FaultConfig {
                    error_rate: 0.25,
                    latency_ms: 3,
                    ..FaultConfig::default()
                })
                .is_ok()
        );
        assert_eq!(faults.get().latency_ms, 3);
    }

    #[test]
    fn rejects_reset_rates_outside_unit_interval_with_a_clear_error() {
        let faults = Faults::new();
        let error = faults.set(config(0.0, 1.5)).expect_err("1.5 is refused");
        assert_eq!(error, FaultError::InvalidResetAfterAcceptRate(1.5));
        assert_eq!(
            error.to_string(),
            "reset_after_accept_rate must be between 0.0 and 1.0, got 1.5"
        );
        let error = faults
            .set(config(0.0, f64::NAN))
            .expect_err("NaN is refused");
        assert!(matches!(error, FaultError::InvalidResetAfterAcceptRate(rate) if rate.is_nan()));
        assert_eq!(
            error.to_string(),
            "reset_after_accept_rate must be between 0.0 and 1.0, got NaN"
        );
        assert!(faults.set(config(0.0, -0.1)).is_err());
        // Nothing was applied by the refused configurations.
        assert_eq!(faults.get(), FaultConfig::default());

        let accepted = FaultConfig {
            reset_after_accept_rate: 1.0,
            slow_response_ms: 250,
            ..FaultConfig::default()
        };
        faults.set(accepted).expect("valid");
        assert_eq!(faults.get(), accepted);
    }

    #[test]
    fn the_json_config_takes_the_new_fields_and_defaults_them() {
        let config: FaultConfig =
            serde_json::from_str(r#"{"reset_after_accept_rate":0.5,"slow_response_ms":20}"#)
                .expect("json");
        assert_eq!(
            config,
            FaultConfig {
                error_rate: 0.0,
                latency_ms: 0,
                reset_after_accept_rate: 0.5,
                slow_response_ms: 20,
            }
        );
        let old: FaultConfig =
            serde_json::from_str(r#"{"error_rate":1.0,"latency_ms":5}"#).expect("json");
        assert_eq!(old.reset_after_accept_rate, 0.0);
        assert_eq!(old.slow_response_ms, 0);
    }

    #[tokio::test]
    async fn full_error_rate_always_fails_and_zero_never_does() {
        let faults = Faults::new();
        for _ in 0..50 {
            assert!(!faults.apply().await);
        }
        faults.set(config(1.0, 0.0)).expect("valid config");
        for _ in 0..50 {
            assert!(faults.apply().await);
        }
        assert_eq!(faults.stats().errors_injected, 50);
        faults.clear_stats();
        assert_eq!(faults.stats(), FaultStats::default());
    }

    #[tokio::test]
    async fn only_accepted_sends_are_reset_and_both_counters_count_them() {
        use axum::response::IntoResponse as _;

        let faults = Faults::new();
        faults.set(config(0.0, 1.0)).expect("valid");
        let platform = AtomicU64::new(0);
        let rejected = faults
            .finish_send(false, &platform, "no".into_response())
            .await;
        assert!(!connection::is_reset_reply(&rejected));
        let accepted = faults
            .finish_send(true, &platform, "ok".into_response())
            .await;
        assert!(connection::is_reset_reply(&accepted));
        assert_eq!(platform.load(Ordering::Relaxed), 1);
        assert_eq!(faults.stats().reset_after_accept, 1);

        faults.set(FaultConfig::default()).expect("valid");
        let accepted = faults
            .finish_send(true, &platform, "ok".into_response())
            .await;
        assert!(!connection::is_reset_reply(&accepted));
        assert_eq!(platform.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn slow_responses_wait_after_processing() {
        use axum::response::IntoResponse as _;

        let faults = Faults::new();
        faults
            .set(FaultConfig {
                slow_response_ms: 60,
                ..FaultConfig::default()
            })
            .expect("valid");
        let platform = AtomicU64::new(0);
        let started = std::time::Instant::now();
        let reply = faults
            .finish_send(false, &platform, "no".into_response())
            .await;
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert!(!connection::is_reset_reply(&reply));
        assert_eq!(faults.stats().slow_responses, 1);
    }
}
