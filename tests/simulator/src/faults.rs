//! Fault injection shared by every platform's API.
//!
//! A fault configuration adds latency to each platform API request and fails
//! a fraction of them with the platform's own "server error" (for WhatsApp,
//! HTTP 500 with Graph error code 131000). Control requests under `/_sim` are
//! never affected.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What faults to inject into platform API requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Fraction of API requests (0.0 to 1.0) that fail with a server error.
    pub error_rate: f64,
    /// Extra latency added to every API request, in milliseconds.
    pub latency_ms: u64,
}

/// A fault configuration was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// `error_rate` was not a number between 0.0 and 1.0.
    #[error("error_rate must be between 0.0 and 1.0, got {0}")]
    InvalidErrorRate(f64),
}

/// The live fault configuration.
#[derive(Debug, Default)]
pub struct Faults {
    config: Mutex<FaultConfig>,
}

impl Faults {
    /// No faults: zero error rate, zero latency.
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
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// Applies the configured latency, then decides whether this request
    /// should fail. Returns `true` when the caller must answer with an
    /// injected server error.
    pub async fn apply(&self) -> bool {
        let config = self.get();
        if config.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(config.latency_ms)).await;
        }
        config.error_rate > 0.0 && rand::random::<f64>() < config.error_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_rates_outside_unit_interval() {
        let faults = Faults::new();
        assert!(
            faults
                .set(FaultConfig {
                    error_rate: 1.5,
                    latency_ms: 0
                })
                .is_err()
        );
        assert!(
            faults
                .set(FaultConfig {
                    error_rate: f64::NAN,
                    latency_ms: 0
                })
                .is_err()
        );
        assert!(
            faults
                .set(FaultConfig {
                    error_rate: 0.25,
                    latency_ms: 3
                })
                .is_ok()
        );
        assert_eq!(faults.get().latency_ms, 3);
    }

    #[tokio::test]
    async fn full_error_rate_always_fails_and_zero_never_does() {
        let faults = Faults::new();
        for _ in 0..50 {
            assert!(!faults.apply().await);
        }
        faults
            .set(FaultConfig {
                error_rate: 1.0,
                latency_ms: 0,
            })
            .expect("valid config");
        for _ in 0..50 {
            assert!(faults.apply().await);
        }
    }
}
