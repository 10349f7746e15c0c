/**
 * HCI traffic recorded from the simulator (a BTSnoop capture) played back into noble with no simulator behind it,
 * so a benchmark measures the host alone.
 *
 * A capture is cut into a script: every packet the host sent, each with the controller's packets that followed it
 * until the host's next packet, and at the end the notification burst (the trailing run of ATT Handle Value
 * Notifications). The replay peer answers the host's n-th packet with the replies recorded after the n-th packet,
 * provided the host sends what it sent while recording (it notes every difference), then plays the burst when
 * asked. Once the script is through, it answers the host's teardown generically (a command gets its Command
 * Complete, a Disconnect its Disconnection Complete) so closing the host does not wait for timeouts.
 */
import { EventEmitter } from "node:events";
import { AttOpcode } from "../../src/protocol/att";
import { decodeBtsnoop } from "../../src/protocol/btsnoop";
import { CID_ATT, HCI_LOCAL_HOST_TERMINATED, HCI_SUCCESS, OP } from "../../src/protocol/hci";
import { buildCommandComplete, buildCommandStatus, buildDisconnectionComplete, parseAcl, parseCommand, parseL2capHeader } from "../../src/protocol/hci-packets";
import type { HciPeer } from "./virtual-port";

export interface ReplayScript {
  /** Controller → host packets recorded before the host's first packet. */
  opening: Buffer[];
  /** The host's packets in order, each with the controller's packets that followed it until the host's next one. */
  steps: { host: Buffer; replies: Buffer[] }[];
  /** The controller's packets after the host's last one: the notification burst. */
  burst: Buffer[];
}

/** Whether an H4 packet is an ATT Handle Value Notification (ACL, L2CAP channel 4, opcode 0x1B). */
export function isAttNotification(packet: Buffer): boolean {
  const acl = parseAcl(packet);
  if (!acl) return false;
  const l2cap = parseL2capHeader(acl.data);
  return l2cap !== undefined && l2cap.cid === CID_ATT && acl.data.length > 4 && acl.data[4] === AttOpcode.HandleValueNotification;
}

/** Cuts a BTSnoop capture (H4 datalink) into a replay script. */
export function replayScript(capture: Buffer): ReplayScript {
  const { records } = decodeBtsnoop(capture);
  let end = records.length;
  while (end > 0 && records[end - 1].direction === "controller-to-host" && isAttNotification(records[end - 1].packet)) end--;
  const opening: Buffer[] = [];
  const steps: ReplayScript["steps"] = [];
  for (const record of records.slice(0, end)) {
    if (record.direction === "host-to-controller") steps.push({ host: record.packet, replies: [] });
    else (steps.at(-1)?.replies ?? opening).push(record.packet);
  }
  return { opening, steps, burst: records.slice(end).map((r) => r.packet) };
}

/** At most this many differences are kept (a host that went its own way would otherwise fill memory). */
const MAX_MISMATCHES = 10;

export class ReplayPeer extends EventEmitter implements HciPeer {
  /** Where the host's packets differed from the recording (index and both packets in hex); empty when they did not. */
  readonly mismatches: string[] = [];
  private next = 0;
  private closed = false;
  private readonly setUp: Promise<void>;
  private setUpDone: () => void = () => undefined;

  constructor(private readonly script: ReplayScript) {
    super();
    this.setUp = new Promise((resolve) => {
      this.setUpDone = resolve;
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Resolves once the host has sent its last recorded packet and its replies have been delivered. */
  whenSetUp(): Promise<void> {
    return this.setUp;
  }

  write(packet: Buffer): void {
    if (this.closed) return;
    const steps = this.script.steps;
    if (this.next >= steps.length) {
      this.deliver(afterScript(packet));
      return;
    }
    const step = steps[this.next];
    if (!packet.equals(step.host) && this.mismatches.length < MAX_MISMATCHES) {
      this.mismatches.push(`host packet ${this.next}: ${packet.toString("hex")}, recorded ${step.host.toString("hex")}`);
    }
    const replies = this.next === 0 ? [...this.script.opening, ...step.replies] : step.replies;
    this.next++;
    this.deliver(replies, this.next === steps.length ? this.setUpDone : undefined);
  }

  /**
   * Plays the notification burst as fast as the host takes it: `perTurn` packets (a connection event's worth)
   * synchronously, then the event loop turns once, so whatever the host defers runs between them as it would
   * between a serial port's reads. Resolves after the last packet.
   */
  async playBurst(perTurn: number): Promise<void> {
    const burst = this.script.burst;
    for (let i = 0; i < burst.length && !this.closed; i += perTurn) {
      const end = Math.min(burst.length, i + perTurn);
      for (let j = i; j < end; j++) this.emit("h4", burst[j]);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit("close");
  }

  /** Controller packets arrive after the write that caused them has returned, as from a serial port. */
  private deliver(packets: readonly Buffer[], then?: () => void): void {
    setImmediate(() => {
      for (const p of packets) {
        if (this.closed) return;
        this.emit("h4", p);
      }
      then?.();
    });
  }
}

/** What a controller answers the host's teardown with, once the recording is through. */
function afterScript(packet: Buffer): Buffer[] {
  const command = parseCommand(packet);
  if (!command) return [];
  if (command.opcode === OP.DISCONNECT && command.params.length >= 2) {
    const handle = command.params.readUInt16LE(0) & 0x0fff;
    return [buildCommandStatus(OP.DISCONNECT, HCI_SUCCESS), buildDisconnectionComplete({ status: HCI_SUCCESS, handle, reason: HCI_LOCAL_HOST_TERMINATED })];
  }
  return [buildCommandComplete(command.opcode, HCI_SUCCESS)];
}
