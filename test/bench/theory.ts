/**
 * The link's theoretical YMODEM throughput (shared/docs/protocols.md §4, LE 1M PHY), for the bench.
 *
 * Link layer: a notification of n ATT value bytes is an L2CAP PDU of n + 3 (ATT header) + 4 (L2CAP header)
 * bytes, cut into ⌈(n + 7) / L⌉ link-layer packets (L = data length: 27 without DLE, 251 with). A full
 * notification carries MTU − 3 bytes and so takes ⌈(MTU + 4) / L⌉ packets. P is the number of data PDUs one
 * direction can carry per connection event: the configured bound, further bounded by air time for full
 * packets (the simulator's maxPdusPerEvent).
 *
 * C mode (ACK per block). A frame of B + 5 bytes (B = 128 for SOH, 1024 for STX) goes out as ⌈(B + 5) / (MTU − 3)⌉
 * notifications, each starting a fresh notification (the seed's server); its packets are k. The receiver can
 * only answer after the event that carried the frame's last packet, and the next frame leaves only after the
 * ACK has reached the sender, so
 *     N = ⌈k / P⌉ + 1 events per block (one event for the ACK),
 *     throughput = B × 8 / (N × interval).
 * The seed's example: MTU 23, P = 6, SOH: 133 bytes = 7 notifications = 7 packets, N = 2 + 1 = 3,
 * 1024 bits / 22.5 ms = 45.5 kbps.
 *
 * G mode (YMODEM-g, no ACKs): the raw notification capacity, every notification full:
 *     notifications per event = P / ⌈(MTU + 4) / L⌉,
 *     throughput = (notifications per event) × (MTU − 3) × 8 / interval × B / (B + 5),
 * B / (B + 5) being the data fraction of a frame (1024/1029 for STX). A sender that starts every frame in a
 * fresh notification ("aligned" framing) cannot reach it: see alignedStreamingKbps.
 *
 * kbps here is kbit/s = bits per millisecond.
 */

/** Bytes around the ATT value of a notification at the link layer: ATT opcode + handle (3), L2CAP header (4). */
const NOTIFICATION_OVERHEAD = 3 + 4;
/** YMODEM frame bytes besides the data: SOH/STX, n, ~n, CRC (2). */
const FRAME_OVERHEAD = 5;

export interface LinkPoint {
  connectionIntervalMs: number;
  mtu: number;
  /** Link-layer data length L (27 or up to 251). */
  dataLength: number;
  /** Effective data PDUs per event (after the air-time bound). */
  pdusPerEvent: number;
}

/** Link-layer packets of one notification carrying `valueBytes`. */
export function packetsPerNotification(valueBytes: number, dataLength: number): number {
  return Math.ceil((valueBytes + NOTIFICATION_OVERHEAD) / dataLength);
}

/** Link-layer packets of one YMODEM frame with `blockBytes` of data, sent as notifications of MTU − 3 bytes each. */
export function packetsPerFrame(blockBytes: number, mtu: number, dataLength: number): number {
  const frame = blockBytes + FRAME_OVERHEAD;
  const room = mtu - 3;
  const full = Math.floor(frame / room);
  const rest = frame - full * room;
  return full * packetsPerNotification(room, dataLength) + (rest > 0 ? packetsPerNotification(rest, dataLength) : 0);
}

/** Connection events per block in C mode: N = ⌈packets per block / P⌉ + 1 (the ACK's event). */
export function eventsPerBlock(link: LinkPoint, blockBytes: number): number {
  return Math.ceil(packetsPerFrame(blockBytes, link.mtu, link.dataLength) / link.pdusPerEvent) + 1;
}

/** C mode: B × 8 / (N × interval), in kbit/s. */
export function theoreticalCKbps(link: LinkPoint, blockBytes: number): number {
  return (blockBytes * 8) / (eventsPerBlock(link, blockBytes) * link.connectionIntervalMs);
}

/** G mode: raw notification capacity (full notifications) times the data fraction B / (B + 5), in kbit/s. */
export function theoreticalGKbps(link: LinkPoint, blockBytes: number): number {
  const notificationsPerEvent = link.pdusPerEvent / packetsPerNotification(link.mtu - 3, link.dataLength);
  const rawKbps = (notificationsPerEvent * (link.mtu - 3) * 8) / link.connectionIntervalMs;
  return (rawKbps * blockBytes) / (blockBytes + FRAME_OVERHEAD);
}

/**
 * G mode with aligned framing, counting packets only: each frame costs packetsPerFrame packets, P of them per
 * event. (The simulator bounds an event by air time, so the short last packet of a frame may squeeze in beside
 * full ones; this figure is then slightly pessimistic.) At MTU 247 / DLE / 7.5 ms: 5 packets per 1024 bytes,
 * 3 per event: 655 kbps, 0.84 of the raw capacity.
 */
export function alignedStreamingKbps(link: LinkPoint, blockBytes: number): number {
  return (link.pdusPerEvent * blockBytes * 8) / (packetsPerFrame(blockBytes, link.mtu, link.dataLength) * link.connectionIntervalMs);
}
