//! Retransmitted device packets are acknowledged but never applied twice: a stale copy of an
//! earlier state report arriving after a newer one must not turn the light back.

mod server_world;

use bytes::BytesMut;
use cync_bridge::protocol::encode::{self, StateReportSpec};
use cync_bridge::protocol::{LightState, MsgId, Stuffing};
use server_world::{device_id, Bridge, Device};

fn report(id: cync_bridge::protocol::PeerId, msg: u16, on: bool) -> Vec<u8> {
    let mut out = BytesMut::new();
    let spec = StateReportSpec {
        tx: 1,
        counter: [msg as u8, 0x22, 0x11],
        mesh_id: 80,
        online: true,
        state: LightState {
            on,
            brightness: 50,
            temperature: 10,
            rgb: [0; 3],
        },
    };
    encode::state_report(&mut out, id, MsgId::from_counter(msg), &spec, Stuffing::Raw);
    out.to_vec()
}

#[tokio::test]
async fn a_late_duplicate_is_acknowledged_but_does_not_undo_a_newer_state() {
    let bridge = Bridge::start("").await;
    let id = device_id(7);
    let mut device = Device::hello(bridge.addr, id).await;

    device.send(&report(id, 1, true)).await;
    device.next_of(0x88).await;
    device.send(&report(id, 2, false)).await;
    device.next_of(0x88).await;
    // The first report again, as a retransmit reordered behind the second.
    device.send(&report(id, 1, true)).await;
    let ack = device.next_of(0x88).await;
    assert_eq!(
        ack,
        [0x88, 0, 0, 0, 3, 0, 1, 0],
        "the retransmit is still acknowledged"
    );

    bridge
        .until("the duplicate is counted", |b| {
            b.sample("tcp_comm_idempotent_drop_total{device_id=\"3d546007\"}") == 1.0
        })
        .await;
    let state = bridge.state().get(&Bridge::key(80)).expect("state stored");
    assert!(!state.light.on, "the newer OFF stands");
}
