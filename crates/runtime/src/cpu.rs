//! CPU time per call: the thread CPU time of every poll of the call's
//! future, so that time spent waiting for a core (a busy machine, other
//! guests) does not count, and time burnt does, whichever worker thread
//! ran it. The epoch callback, which runs inside the poll on the same
//! thread, adds the running poll's time so far.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use cpu_time::ThreadTime;

/// The CPU time one call has used.
#[derive(Debug, Default)]
pub struct CpuAccount {
    /// Nanoseconds of finished polls.
    spent_ns: AtomicU64,
    /// The thread's CPU clock when the running poll started, in ns.
    poll_started_ns: AtomicU64,
}

fn thread_cpu_ns() -> u64 {
    ThreadTime::try_now()
        .map(|t| t.as_duration().as_nanos() as u64)
        .unwrap_or(0)
}

impl CpuAccount {
    /// CPU time used so far, the running poll included. Call it from the
    /// thread running the poll (the epoch callback does).
    pub fn spent(&self) -> Duration {
        let running = thread_cpu_ns().saturating_sub(self.poll_started_ns.load(Ordering::Relaxed));
        Duration::from_nanos(
            self.spent_ns
                .load(Ordering::Relaxed)
                .saturating_add(running),
        )
    }

    /// CPU time of the finished polls.
    pub fn finished_polls(&self) -> Duration {
        Duration::from_nanos(self.spent_ns.load(Ordering::Relaxed))
    }
}

pin_project_lite::pin_project! {
    /// A future whose polls are charged to a [`CpuAccount`].
    pub struct Metered<F> {
        #[pin]
        inner: F,
        account: Arc<CpuAccount>,
    }
}

impl<F> Metered<F> {
    /// Meter `inner` into `account`.
    pub fn new(inner: F, account: Arc<CpuAccount>) -> Self {
        Self { inner, account }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let started = thread_cpu_ns();
        this.account
            .poll_started_ns
            .store(started, Ordering::Relaxed);
        let result = this.inner.poll(cx);
        let used = thread_cpu_ns().saturating_sub(started);
        this.account.spent_ns.fetch_add(used, Ordering::Relaxed);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_is_free_and_burning_is_charged() {
        let account = Arc::new(CpuAccount::default());
        Metered::new(
            tokio::time::sleep(Duration::from_millis(100)),
            Arc::clone(&account),
        )
        .await;
        assert!(
            account.finished_polls() < Duration::from_millis(20),
            "{:?}",
            account.finished_polls()
        );
        Metered::new(
            async {
                let started = ThreadTime::now();
                let mut x = 0u64;
                while started.elapsed() < Duration::from_millis(100) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            },
            Arc::clone(&account),
        )
        .await;
        assert!(
            account.finished_polls() >= Duration::from_millis(100),
            "{:?}",
            account.finished_polls()
        );
    }
}
