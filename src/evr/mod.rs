//! Event-based recording (EVR, seed `001_*`; DESIGN section 9): the signal gate that turns events
//! into clips, and the clip records the store keeps.
//!
//! What belongs here: the rules (which events open or extend a clip, when it closes, what a clip
//! covers). What does not: writing or deleting media (the store), serving clips (HTTP), sending
//! events (MQTT).

pub mod clip;
pub mod gate;
