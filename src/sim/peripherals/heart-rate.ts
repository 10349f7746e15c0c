/**
 * Virtual heart-rate sensor (kind "heart-rate"): Heart Rate service 0x180D, Battery 0x180F, optional
 * Device Information 0x180A. While the central has notifications of 0x2A37 enabled it sends one
 * measurement every intervalMs, from a list of bpm values or of raw packets, cycling; the position in
 * the list survives reconnects, so a central sees the list continue where the previous connection left it.
 */
import { ATT_MAX_VALUE_LENGTH } from "../../protocol/att";
import { encodeHeartRateMeasurement, HEART_RATE_MEASUREMENT, HEART_RATE_SERVICE } from "../../protocol/heart-rate";
import { batteryService, deviceInformationService, GattPeripheral, type DeviceInformation, type PeripheralConfig, type PeripheralKind } from "../peripheral";
import type { ServiceDefinition, Subscription } from "../gatt-server";
import type { Timer } from "../../protocol/clock";
import { DEFAULT_SERVER_MTU } from "../types";
import { optionalInteger, optionalNumber, optionalString, rejectUnknownKeys, requireObject, ScenarioError, type JsonObject } from "../validate";
import { optionalBoolean, optionalHexList, optionalIntegerList, rejectTogether } from "./options";

export const BODY_SENSOR_LOCATION = "2a38";
export const HEART_RATE_CONTROL_POINT = "2a39";
export const BATTERY_LEVEL = "2a19";

/** Heart Rate Control Point: the only defined command. */
const RESET_ENERGY_EXPENDED = 0x01;
/** Heart Rate service error "Control Point value not supported". */
const CONTROL_POINT_NOT_SUPPORTED = 0x80;
/** GAP appearance "Heart Rate Sensor: Heart Rate Belt". */
const APPEARANCE_HEART_RATE_BELT = 0x0341;

export interface HeartRateConfig extends PeripheralConfig {
  /** Default "HRM-" and the address's last two bytes. */
  name?: string;
  /** Beats per minute, cycling (default [60]); ignored when `packets` is given. */
  bpm?: number[];
  /** Raw 0x2A37 values sent verbatim, cycling. */
  packets?: Buffer[];
  intervalMs?: number;
  /** Add one RR interval of 60000/bpm ms (in 1/1024 s) to each measurement. */
  rrIntervals?: boolean;
  /** Add the Energy Expended field: a counter growing 1 kJ per measurement (a hard workout's rate at 1 Hz). */
  energyExpended?: boolean;
  /** 0x2A38 value; default 1 (chest). */
  bodySensorLocation?: number;
  /** Battery level in %; default 100. */
  batteryLevel?: number;
  /** Adds service 0x180A when given. */
  deviceInformation?: DeviceInformation;
}

export class HeartRatePeripheral extends GattPeripheral {
  private readonly bpm: readonly number[];
  private readonly packets: readonly Buffer[] | null;
  private readonly intervalMs: number;
  private readonly withRr: boolean;
  private readonly withEnergy: boolean;
  private readonly bodySensorLocation: number;
  private readonly deviceInformation: DeviceInformation | undefined;
  private battery: number;
  private energy = 0;
  private position = 0;
  private ticker: Timer | null = null;

  constructor(config: HeartRateConfig) {
    super({
      kind: "heart-rate",
      address: config.address,
      addressType: config.addressType ?? "random",
      name: config.name ?? `HRM-${config.address.slice(-5).replace(":", "").toUpperCase()}`,
      clock: config.clock,
      maxMtu: config.maxMtu ?? DEFAULT_SERVER_MTU,
      advertisedServices: [HEART_RATE_SERVICE],
      appearance: APPEARANCE_HEART_RATE_BELT,
    });
    this.bpm = config.bpm ?? [60];
    this.packets = config.packets ?? null;
    this.intervalMs = config.intervalMs ?? 1000;
    this.withRr = config.rrIntervals ?? false;
    this.withEnergy = config.energyExpended ?? false;
    this.bodySensorLocation = config.bodySensorLocation ?? 1;
    this.battery = config.batteryLevel ?? 100;
    this.deviceInformation = config.deviceInformation;
    if (this.bpm.length === 0 || (this.packets !== null && this.packets.length === 0)) throw new RangeError("bpm and packets must not be empty");
  }

  protected services(): ServiceDefinition[] {
    const services: ServiceDefinition[] = [
      {
        uuid: HEART_RATE_SERVICE,
        characteristics: [
          { uuid: HEART_RATE_MEASUREMENT, properties: ["notify"] },
          { uuid: BODY_SENSOR_LOCATION, properties: ["read"], value: Buffer.of(this.bodySensorLocation) },
          { uuid: HEART_RATE_CONTROL_POINT, properties: ["write"], onWrite: (value) => this.controlPoint(value) },
        ],
      },
      batteryService(() => this.battery),
    ];
    if (this.deviceInformation) services.push(deviceInformationService(this.deviceInformation));
    return services;
  }

  /** Energy Expended counter in kJ (saturates at 65535 as the spec says; reset through 0x2A39). */
  get energyExpendedKj(): number {
    return this.energy;
  }

  /** Measurements taken from the bpm/packets list so far (across connections). */
  get measurementsSent(): number {
    return this.position;
  }

  /** Changes the battery level and notifies it when the central subscribed to 0x2A19. */
  setBatteryLevel(percent: number): Promise<void> {
    if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new RangeError(`battery level must be 0..100, got ${percent}`);
    this.battery = percent;
    if (!this.gatt.isSubscribed(BATTERY_LEVEL, "notify")) return Promise.resolve();
    return this.gatt.notify(BATTERY_LEVEL, Buffer.of(percent));
  }

  /**
   * Queues `count` measurements back to back, for "no notification lost" tests: uint16 format (flags 0x01),
   * heart rate 0, 1, 2 … count−1 (mod 65536), so the receiver can check order and completeness.
   * Resolves when the link has sent them all; rejects when the central is not subscribed.
   */
  async sendBurst(count: number): Promise<void> {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`burst count must be a whole number ≥ 0, got ${count}`);
    if (!this.gatt.isSubscribed(HEART_RATE_MEASUREMENT, "notify")) throw new Error("sendBurst: the central has not enabled notifications of 0x2A37");
    const sends: Promise<void>[] = [];
    for (let i = 0; i < count; i++) sends.push(this.gatt.notify(HEART_RATE_MEASUREMENT, encodeHeartRateMeasurement({ bpm: i % 0x10000, uint16: true })));
    await Promise.all(sends);
  }

  protected override onSubscribed(uuid: string, subscription: Subscription): void {
    // Measurements start one interval after the subscription, so tests can count them exactly.
    if (uuid === HEART_RATE_MEASUREMENT && subscription.notify && !this.ticker) this.ticker = this.setRepeating(this.intervalMs, () => this.measure());
  }

  protected override onUnsubscribed(uuid: string): void {
    if (uuid === HEART_RATE_MEASUREMENT) {
      this.ticker?.cancel();
      this.ticker = null;
    }
  }

  protected override onDisconnected(): void {
    this.ticker = null;
  }

  private measure(): void {
    if (!this.gatt.isSubscribed(HEART_RATE_MEASUREMENT, "notify")) return;
    const value = this.nextMeasurement();
    if (value.length > this.gatt.mtu - 3) {
      // Only raw packets can be this long; skipping keeps the cycle going and the test sees why.
      this.recordViolation(`heart-rate packet ${value.toString("hex")} (${value.length} bytes) does not fit MTU ${this.gatt.mtu}; skipped`);
      return;
    }
    // A notification lost with its link needs no handling.
    this.gatt.notify(HEART_RATE_MEASUREMENT, value).catch(() => undefined);
  }

  private nextMeasurement(): Buffer {
    const index = this.position++;
    if (this.packets) return this.packets[index % this.packets.length];
    const bpm = this.bpm[index % this.bpm.length];
    if (this.withEnergy) this.energy = Math.min(0xffff, this.energy + 1);
    return encodeHeartRateMeasurement({
      bpm,
      sensorContact: true,
      energyExpended: this.withEnergy ? this.energy : null,
      rrIntervalsRaw: this.withRr ? [Math.round(61440 / bpm)] : [],
      uint16: bpm > 0xff,
    });
  }

  private controlPoint(value: Buffer): number {
    if (value.length !== 1 || value[0] !== RESET_ENERGY_EXPENDED) return CONTROL_POINT_NOT_SUPPORTED;
    this.energy = 0;
    return 0;
  }
}

const DEVICE_INFORMATION_KEYS = ["manufacturer", "model", "serial", "hardware", "firmware", "software"] as const;

function parseDeviceInformation(spec: JsonObject, field: string): DeviceInformation | undefined {
  if (spec.deviceInformation === undefined) return undefined;
  const at = `${field}.deviceInformation`;
  const obj = requireObject(spec.deviceInformation, at);
  rejectUnknownKeys(obj, DEVICE_INFORMATION_KEYS, at, "option");
  const info: DeviceInformation = {};
  for (const key of DEVICE_INFORMATION_KEYS) {
    if (obj[key] === undefined) continue;
    // Up to the ATT maximum for a value: a string longer than one Read Response (MTU − 1 bytes) is read with Read Blob.
    const text = optionalString(obj, key, at, "", ATT_MAX_VALUE_LENGTH);
    if (Buffer.byteLength(text, "utf8") > ATT_MAX_VALUE_LENGTH) throw new ScenarioError(`${at}.${key}`, `must be at most ${ATT_MAX_VALUE_LENGTH} bytes in UTF-8`);
    info[key] = text;
  }
  return info;
}

export const heartRateKind: PeripheralKind = {
  kind: "heart-rate",
  defaultAddressType: "random",
  options: ["bpm", "packets", "intervalMs", "rrIntervals", "energyExpended", "bodySensorLocation", "batteryLevel", "deviceInformation"],
  create(spec, field, identity, ctx) {
    rejectTogether(spec, "packets", ["bpm", "rrIntervals", "energyExpended"], field);
    return new HeartRatePeripheral({
      ...identity,
      clock: ctx.clock,
      maxMtu: identity.serverMtu,
      bpm: optionalIntegerList(spec, "bpm", field, 1, 0xffff),
      // The largest MTU the link can agree (the server's own) is the limit here; a packet longer than the agreed
      // MTU − 3 is skipped at run time (and recorded as a violation).
      packets: optionalHexList(spec, "packets", field, 1, identity.serverMtu - 3),
      intervalMs: optionalNumber(spec, "intervalMs", field, 1000, 1, 3_600_000),
      rrIntervals: optionalBoolean(spec, "rrIntervals", field, false),
      energyExpended: optionalBoolean(spec, "energyExpended", field, false),
      bodySensorLocation: optionalInteger(spec, "bodySensorLocation", field, 1, 0, 255),
      batteryLevel: optionalInteger(spec, "batteryLevel", field, 100, 0, 100),
      deviceInformation: parseDeviceInformation(spec, field),
    });
  },
};
