/**
 * The two CRC-16 variants YMODEM meets over BLE (see docs/protocols.md §3):
 * - CRC-16/ARC (poly 0x8005 reflected, init 0): the seed's NUS YMODEM and XOSS devices.
 * - CRC-16/XMODEM (poly 0x1021, init 0): standard YMODEM (lrzsz).
 * Both give 0 for an all-zero input, so an all-zero block cannot tell them apart.
 */
export type CrcKind = "arc" | "xmodem";

type Crc16Calculator = (data: Uint8Array, previous?: number) => number;

// The `crc` package (v4) ships CommonJS builds but declares only ES-module types, which TypeScript in
// node16 mode refuses to import from a CommonJS file; so load the CommonJS build with require. The
// calculators/* entry points take a Uint8Array as is, where the top-level ones copy it into a Buffer first.
/* eslint-disable @typescript-eslint/no-require-imports */
const arcCalculator = require("crc/calculators/crc16") as Crc16Calculator;
const xmodemCalculator = require("crc/calculators/crc16xmodem") as Crc16Calculator;
/* eslint-enable @typescript-eslint/no-require-imports */

/** CRC-16/ARC: "123456789" → 0xBB3D. */
export function crc16Arc(data: Uint8Array): number {
  return arcCalculator(data) & 0xffff;
}

/** CRC-16/XMODEM: "123456789" → 0x31C3. */
export function crc16Xmodem(data: Uint8Array): number {
  return xmodemCalculator(data) & 0xffff;
}

export function crc16(kind: CrcKind, data: Uint8Array): number {
  return kind === "arc" ? crc16Arc(data) : crc16Xmodem(data);
}
