//! The shared `access_token` and the one retry after WeChat refuses it.
//!
//! Every API call carries `?access_token=`. The token comes from
//! `POST /cgi-bin/stable_token` and is cached by the host (shared by every
//! call, single-flight), so a campaign of any size fetches it once per
//! lifetime. When WeChat refuses it (40001, 40014, 42001) the message is
//! retried once with a fresh token:
//!
//! 1. forget the refused token (unless another call already replaced it),
//!    fetch one normally (`force_refresh: false`);
//! 2. if WeChat hands back the very token it just refused, fetch again
//!    with `force_refresh: true` (which invalidates it; WeChat allows 20 a day);
//! 3. retry the message; a second refusal is `auth-failed`, and the token
//!    is forgotten so the next call starts afresh.
//!
//! The logic is written against [`TokenStore`] so it can be tested
//! natively; the adapter implements it over the host's token cache.

use switchboard_sdk::types::{Failure, Receipt, SendError};

use crate::errors::Rejection;

/// A token cache shared by every call (the host's, or a fake in tests).
pub trait TokenStore {
    /// The cached token, if any.
    fn get(&mut self) -> Option<String>;
    /// The cached token, or `fetch`'s (then cached for the lifetime it
    /// returns, in seconds); concurrent callers share one fetch.
    fn get_or_fetch(
        &mut self,
        fetch: &mut dyn FnMut() -> Result<(String, u32), SendError>,
    ) -> Result<String, SendError>;
    /// Forget the cached token.
    fn invalidate(&mut self);
}

/// Tokens for one adapter call: the store, how to fetch, and the token in use.
pub struct Tokens<S, F> {
    store: S,
    fetch: F,
    current: Option<String>,
    /// A fetch that failed in this call: later messages of the batch fail
    /// the same way instead of asking the token endpoint again.
    failed: Option<SendError>,
}

impl<S, F> Tokens<S, F>
where
    S: TokenStore,
    F: FnMut(bool) -> Result<(String, u32), SendError>,
{
    /// Tokens from `store`, fetched with `fetch(force_refresh)` when missing.
    pub fn new(store: S, fetch: F) -> Self {
        Self {
            store,
            fetch,
            current: None,
            failed: None,
        }
    }

    /// The token to use: the one this call already has, the cached one, or
    /// a fresh one.
    pub fn current(&mut self) -> Result<String, SendError> {
        if let Some(token) = &self.current {
            return Ok(token.clone());
        }
        let token = self.fetch_shared(false)?;
        self.current = Some(token.clone());
        Ok(token)
    }

    /// A token to replace `rejected`, which WeChat refused.
    pub fn replace(&mut self, rejected: &str) -> Result<String, SendError> {
        self.current = None;
        match self.store.get() {
            // Another call already put a new one in the cache.
            Some(cached) if cached != rejected => {
                self.current = Some(cached.clone());
                return Ok(cached);
            }
            Some(_) => self.store.invalidate(),
            None => {}
        }
        let mut token = self.fetch_shared(false)?;
        if token == rejected {
            // The normal fetch gave the refused token back.
            self.store.invalidate();
            token = self.fetch_shared(true)?;
        }
        self.current = Some(token.clone());
        Ok(token)
    }

    /// Forget `token` after WeChat refused it even fresh.
    pub fn forget(&mut self, token: &str) {
        self.current = None;
        if self.store.get().as_deref() == Some(token) {
            self.store.invalidate();
        }
    }

    fn fetch_shared(&mut self, force_refresh: bool) -> Result<String, SendError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let fetch = &mut self.fetch;
        let result = self.store.get_or_fetch(&mut || fetch(force_refresh));
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }
}

/// Send one message with `post(token)`, retrying it once with a fresh
/// token if WeChat refuses the first.
pub fn send_with_refresh<S, F>(
    tokens: &mut Tokens<S, F>,
    mut post: impl FnMut(&str) -> Result<Receipt, Rejection>,
) -> Result<Receipt, SendError>
where
    S: TokenStore,
    F: FnMut(bool) -> Result<(String, u32), SendError>,
{
    let token = tokens.current()?;
    let first = match post(&token) {
        Ok(receipt) => return Ok(receipt),
        Err(Rejection::Error(error)) => return Err(error),
        Err(Rejection::TokenRejected(failure)) => failure,
    };
    let fresh = tokens.replace(&token).map_err(|error| {
        let failure = error.failure();
        with_message(
            error.clone(),
            format!(
                "WeChat refused the access token ({}: {}) and getting a new one failed: {}",
                first.code, first.message, failure.message
            ),
        )
    })?;
    match post(&fresh) {
        Ok(receipt) => Ok(receipt),
        Err(Rejection::Error(error)) => Err(error),
        Err(Rejection::TokenRejected(second)) => {
            tokens.forget(&fresh);
            Err(SendError::AuthFailed(Failure::new(
                second.code,
                format!(
                    "WeChat refused a freshly fetched access token too: {}",
                    second.message
                ),
            )))
        }
    }
}

/// `error` with its failure's message replaced.
fn with_message(mut error: SendError, message: String) -> SendError {
    error.failure_mut().message = message;
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// The host's cache, in memory: one slot, a count of fetches.
    #[derive(Default)]
    struct Cache {
        value: Option<String>,
        fetches: Vec<bool>,
        invalidations: u32,
    }

    #[derive(Clone, Default)]
    struct Store(Rc<RefCell<Cache>>);

    impl Store {
        fn value(&self) -> Option<String> {
            self.0.borrow().value.clone()
        }
    }

    impl TokenStore for Store {
        fn get(&mut self) -> Option<String> {
            self.0.borrow().value.clone()
        }
        fn get_or_fetch(
            &mut self,
            fetch: &mut dyn FnMut() -> Result<(String, u32), SendError>,
        ) -> Result<String, SendError> {
            if let Some(value) = self.get() {
                return Ok(value);
            }
            let (value, _ttl) = fetch()?;
            self.0.borrow_mut().value = Some(value.clone());
            Ok(value)
        }
        fn invalidate(&mut self) {
            let mut cache = self.0.borrow_mut();
            cache.value = None;
            cache.invalidations += 1;
        }
    }

    /// A token endpoint handing out `normal` tokens in order for normal
    /// fetches and `forced` for forced ones.
    fn tokens(
        store: &Store,
        normal: &'static [&'static str],
        forced: &'static str,
    ) -> Tokens<Store, impl FnMut(bool) -> Result<(String, u32), SendError> + use<>> {
        let log = store.clone();
        let mut next = 0usize;
        Tokens::new(store.clone(), move |force: bool| {
            log.0.borrow_mut().fetches.push(force);
            if force {
                return Ok((forced.to_owned(), 7200));
            }
            let token = normal.get(next).copied().unwrap_or("LAST");
            next += 1;
            Ok((token.to_owned(), 7200))
        })
    }

    fn rejected(code: &str) -> Rejection {
        Rejection::TokenRejected(Failure::new(code, "access_token expired"))
    }

    #[test]
    fn a_batch_fetches_the_token_once() {
        let store = Store::default();
        let mut tokens = tokens(&store, &["T1"], "F");
        for _ in 0..100 {
            let receipt = send_with_refresh(&mut tokens, |token| {
                assert_eq!(token, "T1");
                Ok(Receipt::new("1"))
            })
            .expect("sent");
            assert_eq!(receipt.id(), "1");
        }
        assert_eq!(store.0.borrow().fetches, vec![false]);
        // A second call (a fresh instance) reads the shared cache.
        let mut second = tokens_from_cache(&store);
        send_with_refresh(&mut second, |_| Ok(Receipt::new("2"))).expect("sent");
        assert_eq!(store.0.borrow().fetches, vec![false]);
    }

    fn tokens_from_cache(
        store: &Store,
    ) -> Tokens<Store, impl FnMut(bool) -> Result<(String, u32), SendError> + use<>> {
        Tokens::new(
            store.clone(),
            |_force: bool| -> Result<(String, u32), SendError> {
                panic!("the cached token should be used")
            },
        )
    }

    #[test]
    fn an_expired_token_is_refreshed_and_the_message_retried_once() {
        let store = Store::default();
        let mut tokens = tokens(&store, &["OLD", "NEW"], "F");
        let mut seen = Vec::new();
        let receipt = send_with_refresh(&mut tokens, |token| {
            seen.push(token.to_owned());
            if token == "OLD" {
                Err(rejected("42001"))
            } else {
                Ok(Receipt::new("9"))
            }
        })
        .expect("retried");
        assert_eq!(receipt.id(), "9");
        assert_eq!(seen, vec!["OLD", "NEW"]);
        assert_eq!(store.0.borrow().fetches, vec![false, false]);
        assert_eq!(store.value(), Some("NEW".into()));
        // The rest of the batch uses the new token without fetching.
        send_with_refresh(&mut tokens, |token| {
            assert_eq!(token, "NEW");
            Ok(Receipt::new("10"))
        })
        .expect("sent");
        assert_eq!(store.0.borrow().fetches.len(), 2);
    }

    #[test]
    fn force_refresh_only_when_the_normal_fetch_returns_the_refused_token() {
        let store = Store::default();
        let mut tokens = tokens(&store, &["SAME", "SAME"], "FORCED");
        let mut seen = Vec::new();
        send_with_refresh(&mut tokens, |token| {
            seen.push(token.to_owned());
            if token == "SAME" {
                Err(rejected("40001"))
            } else {
                Ok(Receipt::new("1"))
            }
        })
        .expect("retried with the forced token");
        assert_eq!(seen, vec!["SAME", "FORCED"]);
        assert_eq!(store.0.borrow().fetches, vec![false, false, true]);
        assert_eq!(store.value(), Some("FORCED".into()));
    }

    #[test]
    fn a_second_refusal_is_auth_failed_and_forgets_the_token() {
        let store = Store::default();
        let mut tokens = tokens(&store, &["A", "B"], "F");
        let mut posts = 0;
        let error = send_with_refresh(&mut tokens, |_| {
            posts += 1;
            Err(rejected("40014"))
        })
        .expect_err("refused twice");
        assert_eq!(posts, 2, "exactly one retry");
        match error {
            SendError::AuthFailed(failure) => {
                assert_eq!(failure.code, "40014");
                assert!(failure.message.contains("freshly fetched access token too"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(store.value(), None, "the refused token is forgotten");
    }

    #[test]
    fn a_token_another_call_already_replaced_is_used_without_fetching() {
        let store = Store::default();
        store.0.borrow_mut().value = Some("STALE".into());
        let mut tokens = tokens(&store, &["unused"], "F");
        let token = tokens.current().expect("cached");
        assert_eq!(token, "STALE");
        // Meanwhile a concurrent call refreshed it.
        store.0.borrow_mut().value = Some("FRESH".into());
        assert_eq!(tokens.replace("STALE").expect("fresh"), "FRESH");
        assert!(store.0.borrow().fetches.is_empty());
        assert_eq!(store.0.borrow().invalidations, 0);
    }

    #[test]
    fn a_failed_fetch_fails_the_rest_of_the_batch_without_asking_again() {
        let store = Store::default();
        let calls = Rc::new(RefCell::new(0));
        let counter = Rc::clone(&calls);
        let mut tokens = Tokens::new(store.clone(), move |_force: bool| {
            *counter.borrow_mut() += 1;
            Err(SendError::AuthFailed(Failure::new(
                "40125",
                "stable_token: invalid appsecret",
            )))
        });
        for _ in 0..5 {
            let error = send_with_refresh(&mut tokens, |_| -> Result<Receipt, Rejection> {
                panic!("nothing is posted without a token")
            })
            .expect_err("no token");
            assert!(matches!(error, SendError::AuthFailed(_)));
            assert_eq!(error.failure().code, "40125");
        }
        assert_eq!(*calls.borrow(), 1);
    }

    #[test]
    fn a_failed_refresh_says_what_was_refused() {
        let store = Store::default();
        let fetched = Rc::new(RefCell::new(0));
        let counter = Rc::clone(&fetched);
        let mut tokens = Tokens::new(store, move |_force: bool| {
            let mut n = counter.borrow_mut();
            *n += 1;
            if *n == 1 {
                Ok(("OLD".to_owned(), 7200))
            } else {
                Err(SendError::Transient(Failure::new("-1", "system busy")))
            }
        });
        let error =
            send_with_refresh(&mut tokens, |_| Err(rejected("42001"))).expect_err("refresh failed");
        match error {
            SendError::Transient(failure) => {
                assert_eq!(failure.code, "-1");
                assert!(
                    failure.message.contains("refused the access token (42001")
                        && failure.message.contains("system busy"),
                    "{}",
                    failure.message
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_errors_are_not_retried() {
        let store = Store::default();
        let mut tokens = tokens(&store, &["T"], "F");
        let mut posts = 0;
        let error = send_with_refresh(&mut tokens, |_| {
            posts += 1;
            Err(Rejection::Error(SendError::WindowClosed(Failure::new(
                "45015", "out",
            ))))
        })
        .expect_err("window");
        assert!(matches!(error, SendError::WindowClosed(_)));
        assert_eq!(posts, 1);
    }
}
