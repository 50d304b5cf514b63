//! Validation of `store` (retention of finished rows) and `logging` (log file rotation).

use crate::validate::{join, Ctx};
use crate::yaml::Node;
use crate::Config;

pub(crate) fn store(ctx: &mut Ctx, node: &Node, cfg: &mut Config) {
    let Some(entries) = ctx.mapping(node, "store", &["retention"]) else {
        return;
    };
    for (k, _, v) in entries {
        if k != "retention" {
            continue;
        }
        const KEYS: &[&str] = &["inboundDays", "outboxDays", "idempotencyHours"];
        let Some(r) = ctx.mapping(v, "store.retention", KEYS) else {
            continue;
        };
        let ret = &mut cfg.store.retention;
        for (rk, _, rv) in r {
            let key = join("store.retention", rk);
            match rk.as_str() {
                "inboundDays" => {
                    if let Some(n) = ctx.integer(rv, &key, 0, 3650) {
                        ret.inbound_days = n;
                    }
                }
                "outboxDays" => {
                    if let Some(n) = ctx.integer(rv, &key, 0, 3650) {
                        ret.outbox_days = n;
                    }
                }
                "idempotencyHours" => {
                    if let Some(n) = ctx.integer(rv, &key, 0, 87_600) {
                        ret.idempotency_hours = n;
                    }
                }
                _ => {}
            }
        }
    }
}

pub(crate) fn logging(ctx: &mut Ctx, node: &Node, cfg: &mut Config) {
    let Some(entries) = ctx.mapping(node, "logging", &["level", "maxFileBytes", "maxFiles"]) else {
        return;
    };
    for (k, _, v) in entries {
        let key = join("logging", k);
        match k.as_str() {
            "level" => {
                if let Some(s) = ctx.one_of(v, &key, &crate::LogLevel::NAMES) {
                    if let Some(l) = crate::LogLevel::from_name(&s) {
                        cfg.logging.level = l;
                    }
                }
            }
            "maxFileBytes" => {
                if let Some(n) = ctx.integer(v, &key, 4096, 1 << 40) {
                    cfg.logging.max_file_bytes = n;
                }
            }
            "maxFiles" => {
                if let Some(n) = ctx.integer(v, &key, 1, 100) {
                    cfg.logging.max_files = n as u32;
                }
            }
            _ => {}
        }
    }
}
