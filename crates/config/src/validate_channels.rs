//! Validation of `session` and `channels`.

use crate::validate::Ctx;
use crate::yaml::Node;
use crate::{Config, DmScope};

pub(crate) fn session(ctx: &mut Ctx, node: &Node, cfg: &mut Config) {
    let Some(entries) = ctx.mapping(node, "session", &["dmScope"]) else {
        return;
    };
    for (k, _, v) in entries {
        if k == "dmScope" {
            let allowed = [
                "main",
                "per-peer",
                "per-channel-peer",
                "per-account-channel-peer",
            ];
            cfg.dm_scope = match ctx.one_of(v, "session.dmScope", &allowed).as_deref() {
                Some("main") => DmScope::Main,
                Some("per-peer") => DmScope::PerPeer,
                Some("per-account-channel-peer") => DmScope::PerAccountChannelPeer,
                _ => DmScope::PerChannelPeer,
            };
        }
    }
}

pub(crate) fn channels(
    ctx: &mut Ctx,
    node: &Node,
    cfg: &mut Config,
    parsers: &[&dyn crate::ChannelConfigParser],
) {
    let names: Vec<&str> = parsers.iter().map(|p| p.name()).collect();
    let Some(entries) = ctx.mapping(node, "channels", &names) else {
        return;
    };
    for (k, _, v) in entries {
        if let Some(p) = parsers.iter().find(|p| p.name() == k) {
            if let Some(section) = p.parse_section(ctx, v) {
                cfg.channels.push(crate::ChannelEntry {
                    name: p.name(),
                    section,
                });
            }
        }
    }
}
