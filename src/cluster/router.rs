//! The cluster's [`ConnRouter`]: sockets on this node go to the hub; sockets on other nodes
//! go over the link to their node, one message per node for a frame many sockets get.

use std::collections::HashMap;
use std::sync::Arc;

use super::link::Links;
use crate::ids::ConnId;
use crate::registry::ActorKey;
use crate::ws::frame::Frame;
use crate::ws::hub::ConnHub;
use crate::ws::router::{ConnRouter, Control};

pub struct ClusterRouter {
    node: u64,
    hub: Arc<ConnHub>,
    links: Arc<Links>,
}

impl ClusterRouter {
    pub fn new(node: u64, hub: Arc<ConnHub>, links: Arc<Links>) -> Self {
        ClusterRouter { node, hub, links }
    }
}

impl ConnRouter for ClusterRouter {
    fn push(&self, conn: ConnId, frame: Frame) -> bool {
        if conn.node == self.node {
            self.hub.push(conn, frame)
        } else {
            self.links.frames(conn.node, vec![conn], frame)
        }
    }

    fn push_many(&self, conns: &mut dyn Iterator<Item = ConnId>, frame: &Frame) {
        let mut remote: HashMap<u64, Vec<ConnId>> = HashMap::new();
        let mut local = Vec::new();
        for c in conns {
            if c.node == self.node {
                local.push(c);
            } else {
                remote.entry(c.node).or_default().push(c);
            }
        }
        self.hub.push_many(&mut local.into_iter(), frame);
        for (node, conns) in remote {
            self.links.frames(node, conns, frame.clone());
        }
    }

    fn watched(&self, conn: ConnId, key: ActorKey, on: bool) {
        if conn.node != self.node {
            self.links.watched(conn.node, conn, key, on);
        }
    }

    fn control(&self, conn: ConnId, c: Control) -> bool {
        if conn.node == self.node {
            self.hub.control(conn, c)
        } else {
            self.links.control(conn.node, conn, c)
        }
    }
}
