//! Contract 1.2.0 (`wit/1.2.0`): its generated bindings and the shim that
//! maps them onto the neutral [`model`](crate::model).
//!
//! 1.2.0 is 1.1.0 plus the `http` import (the host performs a list of
//! requests in one call). Its `types` interface is the same text as
//! 1.1.0's, so the bindings reuse 1.1.0's generated types, and with them
//! every conversion to and from the model; only the imports, which the
//! component names with the 1.2.0 version, are generated anew.

use crate::model;

/// The code `wasmtime::component::bindgen!` generates from `wit/1.2.0`.
#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/1.2.0",
        world: "channel-adapter",
        imports: { default: async },
        exports: { default: async },
        with: {
            "switchboard:channel/types@1.2.0": crate::v1_1::switchboard::channel::types,
        },
    });
}
pub use generated::*;

use self::switchboard::channel::{config, http, log, outcomes, storage, token_cache, types};

/// The contract version these bindings implement.
pub const VERSION: &str = "1.2.0";

crate::__shim_imports_since_1_1!();

impl From<http::Request> for model::OutgoingRequest {
    fn from(request: http::Request) -> Self {
        Self {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms,
            messages: request.messages,
        }
    }
}

/// A request's result as `http.send` returns it.
fn to_wire(result: model::OutgoingResult) -> Result<http::Response, http::RequestError> {
    {
        match result {
            Ok(response) => Ok(http::Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
            }),
            Err(model::OutgoingError::Denied(why)) => Err(http::RequestError::Denied(why)),
            Err(model::OutgoingError::NotSent(why)) => Err(http::RequestError::NotSent(why)),
            Err(model::OutgoingError::NoReply(why)) => Err(http::RequestError::NoReply(why)),
        }
    }
}

impl<T: crate::Imports> http::Host for crate::instance::Shim<'_, T> {
    async fn send(
        &mut self,
        requests: Vec<http::Request>,
    ) -> Vec<Result<http::Response, http::RequestError>> {
        let requests = requests.into_iter().map(Into::into).collect();
        crate::Imports::http_send(self.0, requests)
            .await
            .into_iter()
            .map(to_wire)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_every_field() {
        let request = model::OutgoingRequest::from(http::Request {
            method: "POST".into(),
            url: "https://api.line.me/v2/bot/message/push".into(),
            headers: vec![("x-line-retry-key".into(), "k".into())],
            body: b"{}".to_vec(),
            timeout_ms: Some(5_000),
            messages: vec![3, 4, 7],
        });
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, "https://api.line.me/v2/bot/message/push");
        assert_eq!(request.headers, [("x-line-retry-key".into(), "k".into())]);
        assert_eq!(request.body, b"{}");
        assert_eq!(request.timeout_ms, Some(5_000));
        assert_eq!(request.messages, [3, 4, 7]);
    }

    #[test]
    fn each_failure_keeps_whether_it_was_written() {
        let wire = to_wire;
        assert!(matches!(
            wire(Err(model::OutgoingError::Denied("host".into()))),
            Err(http::RequestError::Denied(why)) if why == "host"
        ));
        assert!(matches!(
            wire(Err(model::OutgoingError::NotSent("refused".into()))),
            Err(http::RequestError::NotSent(why)) if why == "refused"
        ));
        assert!(matches!(
            wire(Err(model::OutgoingError::NoReply("reset".into()))),
            Err(http::RequestError::NoReply(why)) if why == "reset"
        ));
        let reply = wire(Ok(model::HttpResponse {
            status: 202,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        }))
        .expect("a reply");
        assert_eq!(reply.status, 202);
        assert_eq!(reply.body, b"{}");
    }
}
