//! The channel-to-node map. `colloquy:channel:<app>…<channel>` names the node that owns a
//! channel: where its people's WebRTC sessions and its agents are. It is taken with `SET NX`, so of
//! two nodes racing for a new channel one wins and the other sees the winner: **a channel has one
//! owner**. Each node also keeps the set of the channels it owns (`colloquy:node_channels:<id>`),
//! so that its channels are freed when it leaves or is found dead. The map's entries do not expire:
//! an owner frees a channel when it is over, and a dead owner's channels are freed by the node that
//! reaps it (or taken over by the next node that finds the owner dead).

use colloquy_model::{AppId, ChannelName};

use crate::{Cluster, ClusterError, NodeId, NodeInfo, NodeState, PREFIX};

/// Where a channel is.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// This node owns it.
    Mine,
    /// Another live node owns it, or was chosen for it: the request goes there.
    Elsewhere(NodeInfo),
}

/// Where a channel nobody owns may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// To the serving node with the most free capacity (this one on a tie).
    Anywhere,
    /// Here: the request was sent here by the node that placed it, or cannot go anywhere else.
    Here,
}

fn channel_key(app: &AppId, channel: &ChannelName) -> String {
    // The app's length first: app ids and channel names may both hold ':'.
    format!("{PREFIX}channel:{}:{}:{}", app.as_str().len(), app.as_str(), channel.as_str())
}

fn owned_key(node: &NodeId) -> String {
    format!("{PREFIX}node_channels:{node}")
}

/// `SET NX` of the channel to this node, and the channel into this node's set; answers the owner.
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SADD', KEYS[2], KEYS[1])
  return ARGV[1]
end
return redis.call('GET', KEYS[1])
";

/// Deletes the channel's entry only while it names ARGV[1], and takes it out of that node's set.
const RELEASE: &str = r"
redis.call('SREM', KEYS[2], KEYS[1])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

impl Cluster {
    /// Finds or chooses the node of `app`'s `channel`. A channel nobody owns is taken for this node
    /// (`SET NX`) when placement picks this node; a channel whose owner is dead is freed and placed
    /// again.
    pub async fn claim_channel(
        &self,
        app: &AppId,
        channel: &ChannelName,
        placement: Placement,
    ) -> Result<Claim, ClusterError> {
        let key = channel_key(app, channel);
        // A few rounds at most: each lost race or dead owner moves the state on.
        for _ in 0..4 {
            let owner = self.owner_id(&key).await?;
            match owner {
                Some(owner) if &owner == self.me() => return Ok(Claim::Mine),
                Some(owner) => match self.node(&owner).await? {
                    Some(info) => return Ok(Claim::Elsewhere(info)),
                    None => {
                        self.release_key(&key, &owner).await?;
                    }
                },
                None => {
                    if placement == Placement::Anywhere {
                        let target = self.place().await?;
                        if let Some(info) = target.filter(|info| &info.id != self.me()) {
                            return Ok(Claim::Elsewhere(info));
                        }
                    }
                    let mut conn = self.conn().await?;
                    // The owner now: this node, or the node that took it first (then the next
                    // round answers where it is).
                    let owner: Option<String> = redis::Script::new(CLAIM)
                        .key(&key)
                        .key(owned_key(self.me()))
                        .arg(self.me().as_str())
                        .invoke_async(&mut *conn)
                        .await?;
                    if owner.as_deref() == Some(self.me().as_str()) {
                        return Ok(Claim::Mine);
                    }
                }
            }
        }
        Err(ClusterError::Corrupt(format!("the owner of {key} kept changing")))
    }

    /// The live node that owns `app`'s `channel`, if any.
    pub async fn channel_owner(&self, app: &AppId, channel: &ChannelName) -> Result<Option<NodeInfo>, ClusterError> {
        match self.owner_id(&channel_key(app, channel)).await? {
            Some(owner) => self.node(&owner).await,
            None => Ok(None),
        }
    }

    /// Frees `app`'s `channel` when this node owns it.
    pub async fn release_channel(&self, app: &AppId, channel: &ChannelName) -> Result<(), ClusterError> {
        self.release_key(&channel_key(app, channel), self.me()).await
    }

    /// The channels this node owns, as `(app, channel)`.
    pub async fn my_channels(&self) -> Result<Vec<(AppId, ChannelName)>, ClusterError> {
        let mut conn = self.conn().await?;
        let keys: Vec<String> = redis::cmd("SMEMBERS").arg(owned_key(self.me())).query_async(&mut *conn).await?;
        Ok(keys.iter().filter_map(|key| parse_channel_key(key)).collect())
    }

    /// The serving node with the most free capacity, this node on a tie; `None` when no node is
    /// registered (this one has not beaten yet).
    pub async fn place(&self) -> Result<Option<NodeInfo>, ClusterError> {
        let nodes = self.nodes().await?;
        Ok(nodes
            .into_iter()
            .filter(|node| node.state == NodeState::Serving)
            .max_by_key(|node| (node.free(), &node.id == self.me(), std::cmp::Reverse(node.id.clone()))))
    }

    /// Frees every channel `node` still owns; answers how many.
    pub(crate) async fn release_channels_of(&self, node: &NodeId) -> Result<usize, ClusterError> {
        let mut conn = self.conn().await?;
        let keys: Vec<String> = redis::cmd("SMEMBERS").arg(owned_key(node)).query_async(&mut *conn).await?;
        drop(conn);
        for key in &keys {
            self.release_key(key, node).await?;
        }
        let mut conn = self.conn().await?;
        let () = redis::cmd("DEL").arg(owned_key(node)).query_async(&mut *conn).await?;
        Ok(keys.len())
    }

    async fn owner_id(&self, key: &str) -> Result<Option<NodeId>, ClusterError> {
        let mut conn = self.conn().await?;
        let owner: Option<String> = redis::cmd("GET").arg(key).query_async(&mut *conn).await?;
        owner.map(|o| NodeId::new(o).map_err(ClusterError::Corrupt)).transpose()
    }

    async fn release_key(&self, key: &str, owner: &NodeId) -> Result<(), ClusterError> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::Script::new(RELEASE)
            .key(key)
            .key(owned_key(owner))
            .arg(owner.as_str())
            .invoke_async(&mut *conn)
            .await?;
        Ok(())
    }
}

/// `(app, channel)` back from a channel key.
fn parse_channel_key(key: &str) -> Option<(AppId, ChannelName)> {
    let rest = key.strip_prefix(PREFIX)?.strip_prefix("channel:")?;
    let (len, rest) = rest.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let app = rest.get(..len)?;
    let channel = rest.get(len..)?.strip_prefix(':')?;
    Some((AppId::new(app).ok()?, ChannelName::new(channel).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_keys_read_back_whatever_the_names_hold() {
        let app = AppId::new("app:1").unwrap();
        let channel = ChannelName::new("room:2").unwrap();
        let key = channel_key(&app, &channel);
        assert_eq!(parse_channel_key(&key), Some((app, channel)));
        assert_eq!(parse_channel_key("colloquy:channel:9:short:x"), None);
    }
}
