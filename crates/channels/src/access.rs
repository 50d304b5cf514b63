//! Who may talk to the agent through a channel: `dmPolicy`, `allowFrom`, group allowlists and
//! mention gating. Only immutable platform ids are compared; an empty allowlist denies.

use crate::{ChatType, InboundMessage};
use clawgate_config::{DmPolicy, GroupConfig};
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run the agent.
    Process,
    /// Unknown DM sender under `pairing`: answer with a pairing code, do not run the agent.
    Pair,
    /// Ignore, with the reason (for logs and status).
    Drop(&'static str),
}

pub struct Policy<'a> {
    pub dm_policy: DmPolicy,
    pub allow_from: &'a [String],
    pub groups: &'a [(String, GroupConfig)],
}

/// A channel's access settings, owned: what [`crate::plugin::Channel::policy`] hands out
/// and what a config reload replaces as a whole (never field by field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySet {
    pub dm_policy: DmPolicy,
    pub allow_from: Vec<String>,
    pub groups: Vec<(String, GroupConfig)>,
}

impl PolicySet {
    pub fn view(&self) -> Policy<'_> {
        Policy {
            dm_policy: self.dm_policy,
            allow_from: &self.allow_from,
            groups: &self.groups,
        }
    }
}

/// The running [`PolicySet`] of a channel, swapped whole by a reload: a message is judged
/// against one consistent set, the old or the new.
#[derive(Debug)]
pub struct LivePolicy(RwLock<Arc<PolicySet>>);

impl LivePolicy {
    pub fn new(p: PolicySet) -> LivePolicy {
        LivePolicy(RwLock::new(Arc::new(p)))
    }
    pub fn get(&self) -> Arc<PolicySet> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Replaces the set; `true` when it differs from the running one.
    pub fn set(&self, p: PolicySet) -> bool {
        let mut cur = self.0.write().unwrap_or_else(|p| p.into_inner());
        if **cur == p {
            return false;
        }
        *cur = Arc::new(p);
        true
    }
}

fn listed(list: &[String], id: &str) -> bool {
    list.iter().any(|a| a == "*" || a == id)
}

/// `approved` says whether the sender was approved through pairing (DMs only).
pub fn decide(p: &Policy, m: &InboundMessage, approved: bool) -> Decision {
    match m.chat_type {
        ChatType::Direct => match p.dm_policy {
            DmPolicy::Disabled => Decision::Drop("direct messages are disabled"),
            DmPolicy::Open => {
                if listed(p.allow_from, &m.sender_id) {
                    Decision::Process
                } else {
                    Decision::Drop("sender not in allowFrom")
                }
            }
            DmPolicy::Allowlist => {
                let exact = p.allow_from.iter().any(|a| a == &m.sender_id);
                if exact || approved {
                    Decision::Process
                } else {
                    Decision::Drop("sender not in allowFrom")
                }
            }
            DmPolicy::Pairing => {
                let exact = p.allow_from.iter().any(|a| a == &m.sender_id);
                if exact || approved {
                    Decision::Process
                } else {
                    Decision::Pair
                }
            }
        },
        ChatType::Group => {
            // The exact group entry wins over the wildcard.
            let group = p
                .groups
                .iter()
                .find(|(id, _)| *id == m.chat_id)
                .or_else(|| p.groups.iter().find(|(id, _)| id == "*"));
            let Some((_, g)) = group else {
                return Decision::Drop("group not in channels.<channel>.groups");
            };
            if !g.enabled {
                return Decision::Drop("group disabled");
            }
            if g.require_mention && !m.mentioned {
                return Decision::Drop("not mentioned");
            }
            // Pairing approvals never grant group access; only allowFrom can narrow senders.
            if !p.allow_from.is_empty() && !listed(p.allow_from, &m.sender_id) {
                return Decision::Drop("sender not in allowFrom");
            }
            Decision::Process
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(chat_type: ChatType, chat: &str, sender: &str, mentioned: bool) -> InboundMessage {
        InboundMessage {
            channel: "telegram".into(),
            account: "default".into(),
            chat_id: chat.into(),
            chat_type,
            sender_id: sender.into(),
            sender_name: None,
            thread_id: None,
            message_id: "1".into(),
            text: "hi".into(),
            mentioned,
            conversation_kind: None,
        }
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn dm_policies() {
        let allow = v(&["42"]);
        let p = |dm_policy| Policy {
            dm_policy,
            allow_from: &allow,
            groups: &[],
        };
        let dm = |s: &str| msg(ChatType::Direct, s, s, false);
        assert_eq!(
            decide(&p(DmPolicy::Pairing), &dm("42"), false),
            Decision::Process
        );
        assert_eq!(
            decide(&p(DmPolicy::Pairing), &dm("7"), false),
            Decision::Pair
        );
        assert_eq!(
            decide(&p(DmPolicy::Pairing), &dm("7"), true),
            Decision::Process
        );
        assert_eq!(
            decide(&p(DmPolicy::Allowlist), &dm("7"), false),
            Decision::Drop("sender not in allowFrom")
        );
        assert_eq!(
            decide(&p(DmPolicy::Disabled), &dm("42"), false),
            Decision::Drop("direct messages are disabled")
        );
        let empty: Vec<String> = vec![];
        let strict = Policy {
            dm_policy: DmPolicy::Allowlist,
            allow_from: &empty,
            groups: &[],
        };
        assert_eq!(
            decide(&strict, &dm("42"), false),
            Decision::Drop("sender not in allowFrom"),
            "empty allowlist denies"
        );
        let star = v(&["*"]);
        let open = Policy {
            dm_policy: DmPolicy::Open,
            allow_from: &star,
            groups: &[],
        };
        assert_eq!(decide(&open, &dm("9"), false), Decision::Process);
    }

    #[test]
    fn a_live_policy_is_swapped_whole() {
        let set = |allow: &[&str]| PolicySet {
            dm_policy: DmPolicy::Allowlist,
            allow_from: v(allow),
            groups: Vec::new(),
        };
        let live = LivePolicy::new(set(&["42"]));
        let before = live.get();
        let dm = msg(ChatType::Direct, "7", "7", false);
        assert_eq!(
            decide(&before.view(), &dm, false),
            Decision::Drop("sender not in allowFrom")
        );
        assert!(!live.set(set(&["42"])), "same set: no change");
        assert!(live.set(set(&["42", "7"])));
        assert_eq!(decide(&live.get().view(), &dm, false), Decision::Process);
        // A holder of the old snapshot keeps judging with it.
        assert_eq!(before.allow_from, v(&["42"]));
    }

    #[test]
    fn groups_need_listing_and_mentions() {
        let groups = vec![
            (
                "-100".to_string(),
                GroupConfig {
                    require_mention: true,
                    enabled: true,
                },
            ),
            (
                "-200".to_string(),
                GroupConfig {
                    require_mention: false,
                    enabled: true,
                },
            ),
        ];
        let none: Vec<String> = vec![];
        let p = Policy {
            dm_policy: DmPolicy::Pairing,
            allow_from: &none,
            groups: &groups,
        };
        assert_eq!(
            decide(&p, &msg(ChatType::Group, "-100", "5", false), false),
            Decision::Drop("not mentioned")
        );
        assert_eq!(
            decide(&p, &msg(ChatType::Group, "-100", "5", true), false),
            Decision::Process
        );
        assert_eq!(
            decide(&p, &msg(ChatType::Group, "-200", "5", false), false),
            Decision::Process
        );
        assert_eq!(
            decide(&p, &msg(ChatType::Group, "-300", "5", true), false),
            Decision::Drop("group not in channels.<channel>.groups")
        );
    }
}
