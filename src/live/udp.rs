//! A viewer's share of a burst (a video frame's packets) sent in as few system calls
//! as the kernel allows: with UDP GSO one `sendmsg` carries the frame's equal-sized
//! packets and a shorter last one, which the kernel (or the network card) cuts into
//! datagrams; without it, one `sendmsg` per packet.
//!
//! The sends never wait: a socket whose buffer is full drops the rest of the burst
//! for that viewer (a NACK may ask for it again), as a UDP send would lose it on the
//! way anyway; nothing a viewer does holds up the others.

use bytes::Bytes;
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

/// Sends `packets` (each a whole datagram) from the UDP socket `fd` to `dst`, in
/// order.
pub(super) fn send_burst(fd: RawFd, dst: SocketAddr, packets: &[Bytes]) -> Result<(), Unsent> {
    let addr = SockaddrStorage::from(dst);
    let mut i = 0;
    while i < packets.len() {
        let n = if GSO_OFF.load(Ordering::Relaxed) {
            1
        } else {
            gso_run(&packets[i..])
        };
        let run = &packets[i..i + n];
        match send(fd, &addr, run) {
            Ok(()) => i += n,
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

/// How many of `packets`, from the first, one GSO send can carry: those of the
/// first's size, then at most one shorter (GSO cuts at the first's size).
fn gso_run(packets: &[Bytes]) -> usize {
    let Some(size) = packets.first().map(Bytes::len) else {
        return 0;
    };
    let mut n = 1;
    let mut bytes = size;
    while n < packets.len() && n < GSO_MAX_SEGMENTS {
        let next = packets[n].len();
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

/// One `sendmsg`: a single datagram, or several cut at the first one's size (GSO).
fn send(fd: RawFd, addr: &SockaddrStorage, run: &[Bytes]) -> nix::Result<()> {
    // On the stack: no allocation per send.
    let mut iov = [IoSlice::new(&[]); GSO_MAX_SEGMENTS];
    for (slot, p) in iov.iter_mut().zip(run) {
        *slot = IoSlice::new(p);
    }
    let iov = &iov[..run.len().min(GSO_MAX_SEGMENTS)];
    let segment = u16::try_from(run[0].len()).map_err(|_| Errno::EMSGSIZE)?;
    let gso = [ControlMessage::UdpGsoSegments(&segment)];
    let cmsgs: &[ControlMessage] = if run.len() > 1 { &gso } else { &[] };
    sendmsg(fd, iov, cmsgs, MsgFlags::MSG_DONTWAIT, Some(addr)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    fn sized(lens: &[usize]) -> Vec<Bytes> {
        lens.iter()
            .enumerate()
            .map(|(i, &n)| Bytes::from(vec![i as u8; n]))
            .collect()
    }

    #[test]
    fn a_gso_run_takes_equal_packets_and_one_shorter() {
        assert_eq!(gso_run(&sized(&[1200, 1200, 1200, 500, 1200])), 4);
        assert_eq!(gso_run(&sized(&[1200, 1200, 1300])), 2);
        assert_eq!(gso_run(&sized(&[500, 500, 500])), 3);
        assert_eq!(gso_run(&sized(&[100])), 1);
        assert_eq!(gso_run(&[]), 0);
        assert_eq!(gso_run(&sized(&[10; 100])), GSO_MAX_SEGMENTS);
        // 65,000 bytes at most in one send.
        assert_eq!(gso_run(&sized(&[1400; 60])), 46);
    }

    #[test]
    fn every_packet_arrives_whole_and_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // A frame (three full packets and a short last), an audio packet, another frame.
        let lens = [1200, 1200, 1200, 300, 160, 1200, 1200, 40];
        let packets = sized(&lens);
        send_burst(tx.as_raw_fd(), rx.local_addr().unwrap(), &packets).unwrap();
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
