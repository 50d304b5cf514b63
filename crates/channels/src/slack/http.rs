//! The HTTP-mode request gate in one call, in the order the seam's webhook gate needs:
//! verify (signature + replay window) on the raw bytes → parse → what to answer.
//! The body cap, the durable insert (deduping on `event_id`) and the response itself stay
//! with the caller.

use super::events::{self, EventCallback, EventsBody, ParseError};
use super::verify::{Verifier, VerifyError};

/// What to do with one Events API request.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpOutcome {
    /// 401, do nothing (forged, altered, stale or unsigned).
    Unauthorized(VerifyError),
    /// Signed but unreadable: 400, do nothing.
    BadRequest(ParseError),
    /// 200 with this body as `text/plain` (the `url_verification` handshake).
    Challenge(String),
    /// Persist (dedupe on `event.event_id`), then 200 with an empty body — before the agent.
    /// `retry_num` is `X-Slack-Retry-Num` on a redelivery.
    Event {
        event: EventCallback,
        retry_num: Option<u32>,
    },
    /// A signed body of another type (`app_rate_limited`, …): 200, nothing to do.
    Ignore(String),
}

/// The request headers the gate reads (raw values, `None` when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct SlackHeaders<'a> {
    pub timestamp: Option<&'a [u8]>,
    pub signature: Option<&'a [u8]>,
    pub retry_num: Option<&'a [u8]>,
}

/// Verifies, then parses. `now_unix` is the current time (injectable for tests).
pub fn gate(verifier: &Verifier, h: SlackHeaders<'_>, body: &[u8], now_unix: i64) -> HttpOutcome {
    if let Err(e) = verifier.verify(h.timestamp, h.signature, body, now_unix) {
        return HttpOutcome::Unauthorized(e);
    }
    match events::parse_body(body) {
        Err(e) => HttpOutcome::BadRequest(e),
        Ok(EventsBody::UrlVerification { challenge }) => HttpOutcome::Challenge(challenge),
        Ok(EventsBody::EventCallback(event)) => HttpOutcome::Event {
            event,
            retry_num: h
                .retry_num
                .and_then(|r| std::str::from_utf8(r).ok())
                .and_then(|r| r.trim().parse().ok()),
        },
        Ok(EventsBody::Other { kind }) => HttpOutcome::Ignore(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawgate_config::Secret;

    const NOW: i64 = 1_715_600_000;

    fn v() -> Verifier {
        Verifier::new(Secret::new("signing-secret")).unwrap()
    }

    fn signed(body: &str, ts: i64) -> (String, String) {
        let ts = ts.to_string();
        let sig = v().sign(&ts, body.as_bytes());
        (ts, sig)
    }

    fn run(body: &str, ts: &str, sig: &str, retry: Option<&str>) -> HttpOutcome {
        let h = SlackHeaders {
            timestamp: Some(ts.as_bytes()),
            signature: Some(sig.as_bytes()),
            retry_num: retry.map(str::as_bytes),
        };
        gate(&v(), h, body.as_bytes(), NOW)
    }

    #[test]
    fn challenge_after_verification() {
        let body = r#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let (ts, sig) = signed(body, NOW);
        assert_eq!(
            run(body, &ts, &sig, None),
            HttpOutcome::Challenge("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into())
        );
        // An unsigned challenge is refused like anything else.
        assert_eq!(
            gate(&v(), SlackHeaders::default(), body.as_bytes(), NOW),
            HttpOutcome::Unauthorized(VerifyError::MissingTimestamp)
        );
    }

    #[test]
    fn events_with_retry_numbers() {
        let body = r#"{"type":"event_callback","team_id":"T1","event_id":"Ev1","event":{"type":"message","channel":"D1","user":"U1","text":"hi","ts":"1.2","channel_type":"im"}}"#;
        let (ts, sig) = signed(body, NOW - 10);
        let HttpOutcome::Event { event, retry_num } = run(body, &ts, &sig, None) else {
            panic!()
        };
        assert_eq!((event.event_id.as_str(), retry_num), ("Ev1", None));
        let HttpOutcome::Event { event, retry_num } = run(body, &ts, &sig, Some("2")) else {
            panic!()
        };
        assert_eq!((event.event_id.as_str(), retry_num), ("Ev1", Some(2)));
    }

    #[test]
    fn forged_altered_stale_and_garbage() {
        let body = r#"{"type":"event_callback","event_id":"Ev1","event":{"type":"message"}}"#;
        let (ts, sig) = signed(body, NOW);
        let altered = body.replace("Ev1", "Ev2");
        assert_eq!(
            run(&altered, &ts, &sig, None),
            HttpOutcome::Unauthorized(VerifyError::BadSignature)
        );
        let (old_ts, old_sig) = signed(body, NOW - 360);
        assert_eq!(
            run(body, &old_ts, &old_sig, None),
            HttpOutcome::Unauthorized(VerifyError::Stale)
        );
        let other = Verifier::new(Secret::new("wrong")).unwrap();
        let forged = other.sign(&ts, body.as_bytes());
        assert_eq!(
            run(body, &ts, &forged, None),
            HttpOutcome::Unauthorized(VerifyError::BadSignature)
        );
        let (ts2, sig2) = signed("not json", NOW);
        assert_eq!(
            run("not json", &ts2, &sig2, None),
            HttpOutcome::BadRequest(ParseError::NotJson)
        );
        let rl = r#"{"type":"app_rate_limited","minute_rate_limited":1518467820}"#;
        let (ts3, sig3) = signed(rl, NOW);
        assert_eq!(
            run(rl, &ts3, &sig3, None),
            HttpOutcome::Ignore("app_rate_limited".into())
        );
    }
}
