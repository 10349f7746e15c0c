/**
 * The one place the bench reaches the HCI driver wrapper: its registry of in-process HCI peers (noble's UART port
 * `virtual:<id>`), where the simulator's controller goes while recording and a replay peer while measuring, and
 * the per-packet work it does towards noble (the ATT and advertising guards). When the wrapper moves, only the
 * paths and type imports here change.
 *
 * The modules are the build output (nodes/, which `npm run bench` builds first), not the TypeScript sources: the
 * wrapper installed is the one users run, and tsx's transform (which names every function expression it creates)
 * stays out of the measured path.
 */
import type { EventEmitter } from "node:events";
import * as fs from "node:fs";
import * as path from "node:path";
import type { VirtualController } from "../../src/sim/controller";

type DriverModule = typeof import("../../src/ble/noble-driver");
type PeerModule = typeof import("../../src/ble/hci-peer");
type AttGuardModule = typeof import("../../src/protocol/att-guard");
type AttMtuModule = typeof import("../../src/protocol/att-mtu");
type AdvertisingGuardModule = typeof import("../../src/protocol/advertising-guard");

const BUILT = path.resolve(__dirname, "..", "..", "nodes");

function built<T>(relative: string): T {
  const file = path.join(BUILT, relative);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first (npm run bench does)`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file) as T;
}

/**
 * What the driver wrapper uses of whatever answers a virtual port: `write` for host → controller packets, `h4`
 * events for controller → host packets, `close` when it goes away.
 */
export interface HciPeer extends EventEmitter {
  write(packet: Buffer): void;
  readonly isClosed: boolean;
}

/** Installs the driver wrapper (idempotent), registers `peer` as `id`, and returns the UART port that reaches it. */
export function attachPeer(id: string, peer: HciPeer | VirtualController): string {
  built<DriverModule>("ble/noble-driver.js").installNobleHciDriver();
  const peers = built<PeerModule>("ble/hci-peer.js");
  peers.registerHciPeer(id, peer);
  return peers.hciPeerPort(id);
}

export function detachPeer(id: string): void {
  built<PeerModule>("ble/hci-peer.js").unregisterHciPeer(id);
}

/**
 * The wrapper's own work on each controller → host packet, composed as the wrapper composes it (ATT guard with
 * the MTU agreement, then the advertising guard), returning how many packets would reach noble: for measuring
 * that work alone on the same packets.
 */
export function driverGuards(): (packet: Buffer) => number {
  const { AttGuard } = built<AttGuardModule>("protocol/att-guard.js");
  const { AttMtuAgreement } = built<AttMtuModule>("protocol/att-mtu.js");
  const { guardAdvertisingReport } = built<AdvertisingGuardModule>("protocol/advertising-guard.js");
  const guard = new AttGuard(() => undefined, new AttMtuAgreement());
  return (packet) => {
    let n = 0;
    for (const p of guard.toHost(packet)) n += guardAdvertisingReport(p).length;
    return n;
  };
}
