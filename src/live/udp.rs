//! A viewer's share of a burst (a video frame's packets) sent in as few system calls
//! as the kernel allows: with UDP GSO one `sendmsg` carries the frame's equal-sized
//! packets and a shorter last one, which the kernel (or the network card) cuts into
//! datagrams; without it, one `sendmsg` per packet.
//!
//! The sends never wait: a socket whose buffer is full drops the rest of the burst
//! for that viewer (a NACK may ask for it again), as a UDP send would lose it on the
//! way anyway; nothing a viewer does holds up the others.

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// Linux's limit on datagrams in one GSO send (`UDP_MAX_SEGMENTS`).
const GSO_MAX_SEGMENTS: usize = 64;

/// A GSO send's payload stays below a UDP datagram's 65,507 bytes.
const GSO_MAX_BYTES: usize = 65_000;

/// Set at the first GSO send the kernel refuses (a kernel or route without UDP GSO):
/// from then on packets go one by one, for the daemon's life.
static GSO_OFF: AtomicBool = AtomicBool::new(false);

/// Why a burst was not sent whole.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unsent {
    /// The socket's buffer is full: the rest of the burst is dropped for this viewer.
    Full,
    /// Any other error (the socket is closing, the route is gone).
    Failed(Errno),
}

/// Sends a viewer's packets from the UDP socket `fd` to `dst`, in order: `data`
/// holds them one after another, `lens` their lengths (each a whole datagram).
pub(super) fn send_burst(
    fd: RawFd,
    dst: SocketAddr,
    data: &[u8],
    lens: &[usize],
) -> Result<(), Unsent> {
    let addr = SockaddrStorage::from(dst);
    let (mut i, mut at) = (0, 0);
    while i < lens.len() {
        let n = if GSO_OFF.load(Ordering::Relaxed) {
            1
        } else {
            gso_run(&lens[i..])
        };
        let run_bytes: usize = lens[i..i + n].iter().sum();
        // Lengths that overrun the data are the caller's bug: nothing more is sent.
        let Some(run) = data.get(at..at + run_bytes) else {
            return Err(Unsent::Failed(Errno::EINVAL));
        };
        match send(fd, &addr, run, lens[i], n > 1) {
            Ok(()) => {
                i += n;
                at += run_bytes;
            }
            Err(Errno::EAGAIN | Errno::ENOBUFS) => return Err(Unsent::Full),
            // A kernel without UDP GSO (EINVAL, ENOPROTOOPT) or a device that
            // cannot take it (EIO): one by one from now on, this run included.
            Err(Errno::EINVAL | Errno::ENOPROTOOPT | Errno::EIO) if n > 1 => {
                if !GSO_OFF.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        "livestream: UDP GSO refused by the kernel; sending packets one by one"
                    );
                }
            }
            Err(e) => return Err(Unsent::Failed(e)),
        }
    }
    Ok(())
}

/// How many packets of these lengths, from the first, one GSO send can carry: those
/// of the first's size, then at most one shorter (GSO cuts at the first's size).
fn gso_run(lens: &[usize]) -> usize {
    let Some(&size) = lens.first() else {
        return 0;
    };
    let mut n = 1;
    let mut bytes = size;
    while n < lens.len() && n < GSO_MAX_SEGMENTS {
        let next = lens[n];
        if next > size || bytes + next > GSO_MAX_BYTES {
            break;
        }
        n += 1;
        bytes += next;
        if next < size {
            break;
        }
    }
    n
}

/// One `sendmsg` of `run`, packets laid one after another: a single datagram, or
/// (`gso`) several cut every `segment_bytes` by the kernel.
fn send(
    fd: RawFd,
    addr: &SockaddrStorage,
    run: &[u8],
    segment_bytes: usize,
    gso: bool,
) -> nix::Result<()> {
    let iov = [IoSlice::new(run)];
    let segment = u16::try_from(segment_bytes).map_err(|_| Errno::EMSGSIZE)?;
    let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
    let cmsgs: &[ControlMessage] = if gso { &cmsg } else { &[] };
    sendmsg(fd, &iov, cmsgs, MsgFlags::MSG_DONTWAIT, Some(addr)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_gso_run_takes_equal_packets_and_one_shorter() {
        assert_eq!(gso_run(&[1200, 1200, 1200, 500, 1200]), 4);
        assert_eq!(gso_run(&[1200, 1200, 1300]), 2);
        assert_eq!(gso_run(&[500, 500, 500]), 3);
        assert_eq!(gso_run(&[100]), 1);
        assert_eq!(gso_run(&[]), 0);
        assert_eq!(gso_run(&[10; 100]), GSO_MAX_SEGMENTS);
        // 65,000 bytes at most in one send.
        assert_eq!(gso_run(&[1400; 60]), 46);
    }

    #[test]
    fn every_packet_arrives_whole_and_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // A frame (three full packets and a short last), an audio packet, another frame.
        let lens = [1200, 1200, 1200, 300, 160, 1200, 1200, 40];
        let packets: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![i as u8; n])
            .collect();
        let data = packets.concat();
        send_burst(tx.as_raw_fd(), rx.local_addr().unwrap(), &data, &lens).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 2000];
        for (i, want) in packets.iter().enumerate() {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &want[..], "datagram {i}");
        }
        // Linux takes UDP GSO on loopback since 4.18: the frames went as GSO sends,
        // not through the one-by-one fallback.
        assert!(!GSO_OFF.load(Ordering::Relaxed));
    }
}
