/**
 * The BTHome v2 object table (https://bthome.io/format, as of its 2026-04 revision that added the command object
 * 0x3B). Pure data.
 *
 * Names are the specification's property names in camelCase ("packet id" → packetId, "pm2.5" → pm25, "UV index" →
 * uvIndex). Where the specification gives two objects one name in different units, the unit it puts in the name
 * stays in ours (massKg / massLb, distanceMm / distanceM; volume is litres, so 0x48 in millilitres is volumeMl).
 * Objects of one name in one unit share it ("temperature" is 0x02, 0x45, 0x57 and 0x58, all °C; "acceleration" and
 * "speed" include their signed variants). Four binary sensors share their name with a measurement, so they say what
 * `true` means instead: batteryLow (0x15), powerOn (0x10), gasDetected (0x1C), moistureDetected (0x20).
 */

export type BthomeObject =
  /** An integer of `bytes` little-endian bytes; value = raw × multiplier / 10^decimals, in `unit`. */
  | { kind: "number"; name: string; bytes: 1 | 2 | 3 | 4; signed: boolean; multiplier: number; decimals: number; unit: string }
  /** One byte: 0 → false, anything else → true. */
  | { kind: "binary"; name: string }
  /** Button event, one byte: "none", "press", … */
  | { kind: "button"; name: "button" }
  /** Dimmer event, two bytes: event, steps. */
  | { kind: "dimmer"; name: "dimmer" }
  /** Command: a length byte (low 5 bits: argument bytes), an opcode, the arguments. */
  | { kind: "command"; name: "command" }
  /** A length byte, then UTF-8 text. */
  | { kind: "text"; name: "text" }
  /** A length byte, then bytes, reported as hex. */
  | { kind: "raw"; name: "raw" }
  /** uint32 seconds since 1970-01-01 UTC, reported as ISO 8601 text. */
  | { kind: "timestamp"; name: "timestamp" }
  /** Firmware version of `bytes` bytes, little-endian, reported most significant part first ("4.2.1.0"). */
  | { kind: "firmware"; name: "firmwareVersion"; bytes: 3 | 4 };

const num = (
  name: string,
  bytes: 1 | 2 | 3 | 4,
  signed: boolean,
  factor: { multiplier?: number; decimals?: number },
  unit: string,
): BthomeObject => ({ kind: "number", name, bytes, signed, multiplier: factor.multiplier ?? 1, decimals: factor.decimals ?? 0, unit });
const bin = (name: string): BthomeObject => ({ kind: "binary", name });
const ONE = {};
const D1 = { decimals: 1 };
const D2 = { decimals: 2 };
const D3 = { decimals: 3 };
const D6 = { decimals: 6 };

export const PACKET_ID_OBJECT = 0x00;

export const BTHOME_OBJECTS: ReadonlyMap<number, BthomeObject> = new Map<number, BthomeObject>([
  [0x00, num("packetId", 1, false, ONE, "")],
  [0x01, num("battery", 1, false, ONE, "%")],
  [0x02, num("temperature", 2, true, D2, "°C")],
  [0x03, num("humidity", 2, false, D2, "%")],
  [0x04, num("pressure", 3, false, D2, "hPa")],
  [0x05, num("illuminance", 3, false, D2, "lx")],
  [0x06, num("massKg", 2, false, D2, "kg")],
  [0x07, num("massLb", 2, false, D2, "lb")],
  [0x08, num("dewpoint", 2, true, D2, "°C")],
  [0x09, num("count", 1, false, ONE, "")],
  [0x0a, num("energy", 3, false, D3, "kWh")],
  [0x0b, num("power", 3, false, D2, "W")],
  [0x0c, num("voltage", 2, false, D3, "V")],
  [0x0d, num("pm25", 2, false, ONE, "µg/m³")],
  [0x0e, num("pm10", 2, false, ONE, "µg/m³")],
  [0x0f, bin("genericBoolean")],
  [0x10, bin("powerOn")],
  [0x11, bin("opening")],
  [0x12, num("co2", 2, false, ONE, "ppm")],
  [0x13, num("tvoc", 2, false, ONE, "µg/m³")],
  [0x14, num("moisture", 2, false, D2, "%")],
  [0x15, bin("batteryLow")],
  [0x16, bin("batteryCharging")],
  [0x17, bin("carbonMonoxide")],
  [0x18, bin("cold")],
  [0x19, bin("connectivity")],
  [0x1a, bin("door")],
  [0x1b, bin("garageDoor")],
  [0x1c, bin("gasDetected")],
  [0x1d, bin("heat")],
  [0x1e, bin("light")],
  [0x1f, bin("lock")],
  [0x20, bin("moistureDetected")],
  [0x21, bin("motion")],
  [0x22, bin("moving")],
  [0x23, bin("occupancy")],
  [0x24, bin("plug")],
  [0x25, bin("presence")],
  [0x26, bin("problem")],
  [0x27, bin("running")],
  [0x28, bin("safety")],
  [0x29, bin("smoke")],
  [0x2a, bin("sound")],
  [0x2b, bin("tamper")],
  [0x2c, bin("vibration")],
  [0x2d, bin("window")],
  [0x2e, num("humidity", 1, false, ONE, "%")],
  [0x2f, num("moisture", 1, false, ONE, "%")],
  [0x3a, { kind: "button", name: "button" }],
  [0x3b, { kind: "command", name: "command" }],
  [0x3c, { kind: "dimmer", name: "dimmer" }],
  [0x3d, num("count", 2, false, ONE, "")],
  [0x3e, num("count", 4, false, ONE, "")],
  [0x3f, num("rotation", 2, true, D1, "°")],
  [0x40, num("distanceMm", 2, false, ONE, "mm")],
  [0x41, num("distanceM", 2, false, D1, "m")],
  [0x42, num("duration", 3, false, D3, "s")],
  [0x43, num("current", 2, false, D3, "A")],
  [0x44, num("speed", 2, false, D2, "m/s")],
  [0x45, num("temperature", 2, true, D1, "°C")],
  [0x46, num("uvIndex", 1, false, D1, "")],
  [0x47, num("volume", 2, false, D1, "L")],
  [0x48, num("volumeMl", 2, false, ONE, "mL")],
  [0x49, num("volumeFlowRate", 2, false, D3, "m³/h")],
  [0x4a, num("voltage", 2, false, D1, "V")],
  [0x4b, num("gas", 3, false, D3, "m³")],
  [0x4c, num("gas", 4, false, D3, "m³")],
  [0x4d, num("energy", 4, false, D3, "kWh")],
  [0x4e, num("volume", 4, false, D3, "L")],
  [0x4f, num("water", 4, false, D3, "L")],
  [0x50, { kind: "timestamp", name: "timestamp" }],
  [0x51, num("acceleration", 2, false, D3, "m/s²")],
  [0x52, num("gyroscope", 2, false, D3, "°/s")],
  [0x53, { kind: "text", name: "text" }],
  [0x54, { kind: "raw", name: "raw" }],
  [0x55, num("volumeStorage", 4, false, D3, "L")],
  [0x56, num("conductivity", 2, false, ONE, "µS/cm")],
  [0x57, num("temperature", 1, true, ONE, "°C")],
  [0x58, num("temperature", 1, true, { multiplier: 35, decimals: 2 }, "°C")],
  [0x59, num("count", 1, true, ONE, "")],
  [0x5a, num("count", 2, true, ONE, "")],
  [0x5b, num("count", 4, true, ONE, "")],
  [0x5c, num("power", 4, true, D2, "W")],
  [0x5d, num("current", 2, true, D3, "A")],
  [0x5e, num("direction", 2, false, D2, "°")],
  [0x5f, num("precipitation", 2, false, D1, "mm")],
  [0x60, num("channel", 1, false, ONE, "")],
  [0x61, num("rotationalSpeed", 2, false, ONE, "rpm")],
  [0x62, num("speed", 4, true, D6, "m/s")],
  [0x63, num("acceleration", 4, true, D6, "m/s²")],
  [0x64, num("lightLevel", 1, false, ONE, "")],
  [0x65, num("settingsRevision", 1, false, ONE, "")],
  [0xf0, num("deviceTypeId", 2, false, ONE, "")],
  [0xf1, { kind: "firmware", name: "firmwareVersion", bytes: 4 }],
  [0xf2, { kind: "firmware", name: "firmwareVersion", bytes: 3 }],
]);

/** Button events by event id (0x3A). */
export const BUTTON_EVENTS: ReadonlyMap<number, string> = new Map([
  [0x00, "none"],
  [0x01, "press"],
  [0x02, "double_press"],
  [0x03, "triple_press"],
  [0x04, "long_press"],
  [0x05, "long_double_press"],
  [0x06, "long_triple_press"],
  [0x80, "hold_press"],
]);

/** Dimmer events by event id (0x3C). */
export const DIMMER_EVENTS: ReadonlyMap<number, string> = new Map([
  [0x00, "none"],
  [0x01, "rotate_left"],
  [0x02, "rotate_right"],
]);

/** Command opcodes (0x3B). */
export const COMMAND_OPCODES: ReadonlyMap<number, string> = new Map([
  [0x00, "off"],
  [0x01, "on"],
  [0x02, "toggle"],
  [0x03, "step_up"],
  [0x04, "step_down"],
]);
