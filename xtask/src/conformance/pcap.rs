//! A minimal libpcap writer: each payload becomes one TCP segment of one connection
//! (Ethernet / IPv4 / TCP, loopback addresses), so a dissector sees exactly one frame per
//! segment.

/// Client and server ends of the synthetic connection.
pub(crate) const CLIENT_PORT: u16 = 49152;
/// The MSRP port tshark is told to decode (`-d tcp.port==2855,msrp`).
pub(crate) const SERVER_PORT: u16 = 2855;

/// The largest payload one IPv4 packet can carry with 20-byte IP and TCP headers.
pub(crate) const MAX_PAYLOAD: usize = 65535 - 40;

/// Writes a pcap file (microsecond timestamps, Ethernet link type) with one TCP segment
/// per payload, all sent client -> server with consecutive sequence numbers.
///
/// Panics if a payload exceeds [`MAX_PAYLOAD`] (the caller builds the frames).
pub(crate) fn tcp_stream(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    // Global header: magic, version 2.4, thiszone, sigfigs, snaplen, LINKTYPE_ETHERNET.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());

    let src_ip = [127, 0, 0, 1];
    let dst_ip = [127, 0, 0, 2];
    let mut seq: u32 = 1000;
    for (i, payload) in payloads.iter().enumerate() {
        assert!(
            payload.len() <= MAX_PAYLOAD,
            "payload {i} too large for one segment"
        );
        let frame = packet(src_ip, dst_ip, seq, i as u16, payload);
        seq = seq.wrapping_add(payload.len() as u32);
        let ts = i as u32;
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

fn packet(src: [u8; 4], dst: [u8; 4], seq: u32, ip_id: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + payload.len());
    // Ethernet II: destination, source (locally administered), EtherType IPv4.
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);

    let total_len = (20 + 20 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45; // version 4, IHL 5
    ip[2..4].copy_from_slice(&total_len.to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64; // TTL
    ip[9] = 6; // TCP
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);

    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&CLIENT_PORT.to_be_bytes());
    tcp[2..4].copy_from_slice(&SERVER_PORT.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&1u32.to_be_bytes()); // ack
    tcp[12] = 5 << 4; // data offset
    tcp[13] = 0x18; // PSH, ACK
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes()); // window
    let tcp_len = (20 + payload.len()) as u16;
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src);
    pseudo[4..8].copy_from_slice(&dst);
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&tcp_len.to_be_bytes());
    let sum = checksum(&[&pseudo, &tcp, payload]);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&tcp);
    f.extend_from_slice(payload);
    f
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (checksum 220d).
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03], &[0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
    }

    #[test]
    fn ipv4_header_checksum_verifies_to_zero() {
        let file = tcp_stream(&[b"hello".to_vec()]);
        let ip = &file[24 + 16 + 14..24 + 16 + 34];
        assert_eq!(checksum(&[ip]), 0);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 45);
    }
}
