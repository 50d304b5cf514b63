//! The config side of the channel seam. The config crate names no platform: each channel
//! (in `clawgate_channels`) parses and validates its own `channels.<name>` section from the
//! positioned YAML node, reporting into the same [`Ctx`] as the core sections, and declares
//! its secrets once (used for log redaction and `config.get` redaction alike).

use crate::validate::Ctx;
use crate::yaml::Node;
use crate::Secret;
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

/// One channel's parsed section: plain data, built into a running channel by the gateway.
pub trait ChannelSection: Any + Debug + Send + Sync {
    /// `enabled: false` keeps the section (and its validation) but starts nothing.
    fn enabled(&self) -> bool;
    /// Every secret value of the section (tokens, webhook secrets, signing secrets).
    fn secrets(&self) -> Vec<&Secret>;
    fn as_any(&self) -> &dyn Any;
}

/// Parses one `channels.<name>` section.
pub trait ChannelConfigParser: Sync {
    fn name(&self) -> &'static str;
    /// Reports problems into `ctx` (as `channels.<name>.key`); `None` when the section is
    /// unusable.
    fn parse_section(&self, ctx: &mut Ctx, node: &Node) -> Option<Arc<dyn ChannelSection>>;
}

/// A parsed `channels.<name>` section.
#[derive(Debug, Clone)]
pub struct ChannelEntry {
    pub name: &'static str,
    pub section: Arc<dyn ChannelSection>,
}

impl ChannelEntry {
    /// The section as its concrete type.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.section.as_any().downcast_ref::<T>()
    }
}
