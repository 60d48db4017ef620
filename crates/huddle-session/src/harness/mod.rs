//! A deterministic test harness for sans-IO endpoints: several [`Node`]s, a simulated
//! clock, and a simulated network with latency, jitter (so reordering), loss and
//! disconnects, all driven by one seeded generator, with a bound on steps so a livelock
//! fails instead of hanging.
//!
//! The harness owns time: nodes only ever see the simulated `now`, so a scenario that
//! spans minutes of protocol timeouts runs in microseconds and replays identically for
//! a given seed. [`JingleNode`] adapts a Jingle [`SessionManager`](crate::jingle::SessionManager).

mod fuzz;
mod jingle;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::jingle::ids::IdGen;

pub use fuzz::session_inputs;
pub use jingle::{JingleNode, RequestLedger};

/// A sans-IO endpoint the harness can drive.
pub trait Node {
    /// What travels on the network.
    type Msg: fmt::Debug;
    /// This node's network address.
    fn addr(&self) -> &str;
    /// A message arrived from `from`.
    fn handle(&mut self, from: &str, msg: Self::Msg, now: Instant);
    /// The next message to send and its destination.
    fn poll_transmit(&mut self, now: Instant) -> Option<(String, Self::Msg)>;
    /// When the node wants [`Node::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
    /// The node's timers at `now`.
    fn handle_timeout(&mut self, now: Instant);
}

/// The simulated network's behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetConfig {
    /// One-way delay of every message.
    pub latency: Duration,
    /// Extra delay, uniform in `0..=jitter`, per message: messages overtake each other.
    pub jitter: Duration,
    /// Probability (0.0..=1.0) that a message is lost.
    pub loss: f64,
    /// Seed of the generator behind jitter and loss.
    pub seed: u64,
    /// Steps before [`Sim::run_until_idle`] gives up with [`HarnessError::StepBound`].
    pub max_steps: u64,
}

impl Default for NetConfig {
    /// 10 ms latency, no jitter, no loss, seed 1, 100 000 steps.
    fn default() -> Self {
        NetConfig {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            seed: 1,
            max_steps: 100_000,
        }
    }
}

/// Why a run stopped abnormally.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// More steps than [`NetConfig::max_steps`]: the nodes keep each other busy.
    #[error("no quiescence after {0} steps (livelock?)")]
    StepBound(u64),
    /// A message went to an address no node has.
    #[error("message to unknown address {0:?}")]
    UnknownAddress(String),
}

/// What the network did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages lost at random.
    pub lost: u64,
    /// Messages dropped because an end was disconnected.
    pub cut: u64,
}

struct InFlight<M> {
    from: String,
    to: usize,
    msg: M,
}

/// The simulation: nodes, clock, network.
pub struct Sim<N: Node> {
    nodes: Vec<N>,
    index: HashMap<String, usize>,
    start: Instant,
    now: Instant,
    config: NetConfig,
    rng: IdGen,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    flights: HashMap<u64, InFlight<N::Msg>>,
    seq: u64,
    down: HashSet<String>,
    steps: u64,
    stats: NetStats,
}

impl<N: Node> fmt::Debug for Sim<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("nodes", &self.index.keys().collect::<Vec<_>>())
            .field("elapsed", &self.elapsed())
            .field("in_flight", &self.flights.len())
            .field("steps", &self.steps)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<N: Node> Sim<N> {
    /// An empty simulation at time zero.
    pub fn new(config: NetConfig) -> Sim<N> {
        let start = Instant::now();
        Sim {
            nodes: Vec::new(),
            index: HashMap::new(),
            start,
            now: start,
            config,
            rng: IdGen::new(Some(config.seed)),
            queue: BinaryHeap::new(),
            flights: HashMap::new(),
            seq: 0,
            down: HashSet::new(),
            steps: 0,
            stats: NetStats::default(),
        }
    }

    /// Adds a node; returns its index.
    pub fn add(&mut self, node: N) -> usize {
        let i = self.nodes.len();
        self.index.insert(node.addr().to_owned(), i);
        self.nodes.push(node);
        i
    }

    /// A node.
    pub fn node(&self, i: usize) -> &N {
        &self.nodes[i]
    }

    /// A node, to issue commands to it (they take effect on the next step).
    pub fn node_mut(&mut self, i: usize) -> &mut N {
        &mut self.nodes[i]
    }

    /// The simulated now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The network counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Cuts `addr` off: whatever it sends or is sent from now on is dropped, including
    /// messages already in flight to it.
    pub fn disconnect(&mut self, addr: &str) {
        self.down.insert(addr.to_owned());
    }

    /// Connects `addr` again.
    pub fn reconnect(&mut self, addr: &str) {
        self.down.remove(addr);
    }

    /// Moves the clock forward without delivering anything.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    fn chance(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Collects what every node wants to send and puts it on the network.
    fn collect(&mut self) -> Result<(), HarnessError> {
        for i in 0..self.nodes.len() {
            while let Some((to, msg)) = self.nodes[i].poll_transmit(self.now) {
                self.stats.sent += 1;
                let from = self.nodes[i].addr().to_owned();
                let dest = *self
                    .index
                    .get(&to)
                    .ok_or_else(|| HarnessError::UnknownAddress(to.clone()))?;
                if self.down.contains(&from) || self.down.contains(&to) {
                    self.stats.cut += 1;
                    continue;
                }
                if self.config.loss > 0.0 && self.chance() < self.config.loss {
                    self.stats.lost += 1;
                    continue;
                }
                let jitter = if self.config.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    self.config.jitter.mul_f64(self.chance())
                };
                let at = self.now + self.config.latency + jitter;
                self.seq += 1;
                self.queue.push(Reverse((at, self.seq)));
                self.flights.insert(
                    self.seq,
                    InFlight {
                        from,
                        to: dest,
                        msg,
                    },
                );
            }
        }
        Ok(())
    }

    /// One step: send what is pending, then move the clock to the next delivery or
    /// timer and handle everything due then. `Ok(false)` when nothing is left to do.
    pub fn step(&mut self) -> Result<bool, HarnessError> {
        self.collect()?;
        let next_msg = self.queue.peek().map(|Reverse((t, _))| *t);
        let next_timer = self.nodes.iter().filter_map(Node::poll_timeout).min();
        let Some(next) = [next_msg, next_timer].into_iter().flatten().min() else {
            return Ok(false);
        };
        self.steps += 1;
        if self.steps > self.config.max_steps {
            return Err(HarnessError::StepBound(self.steps));
        }
        self.now = self.now.max(next);
        while let Some(Reverse((t, seq))) = self.queue.peek().copied() {
            if t > self.now {
                break;
            }
            self.queue.pop();
            let Some(f) = self.flights.remove(&seq) else {
                continue;
            };
            let to_addr = self.nodes[f.to].addr().to_owned();
            if self.down.contains(&to_addr) || self.down.contains(&f.from) {
                self.stats.cut += 1;
                continue;
            }
            self.stats.delivered += 1;
            self.nodes[f.to].handle(&f.from, f.msg, self.now);
        }
        let now = self.now;
        for n in &mut self.nodes {
            if n.poll_timeout().is_some_and(|t| t <= now) {
                n.handle_timeout(now);
            }
        }
        Ok(true)
    }

    /// Steps until nothing is in flight and no timer is armed.
    pub fn run_until_idle(&mut self) -> Result<u64, HarnessError> {
        let first = self.steps;
        while self.step()? {}
        Ok(self.steps - first)
    }

    /// Steps while the next thing to happen is before `now + by`, then sets the clock
    /// to `now + by`.
    pub fn run_for(&mut self, by: Duration) -> Result<(), HarnessError> {
        let until = self.now + by;
        loop {
            self.collect()?;
            let next_msg = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_timer = self.nodes.iter().filter_map(Node::poll_timeout).min();
            match [next_msg, next_timer].into_iter().flatten().min() {
                Some(t) if t <= until => {
                    self.step()?;
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
        Ok(())
    }
}
