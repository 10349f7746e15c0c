/**
 * The numbers of HCI as the virtual controller and the host guards use them: H4 packet types, event and subevent
 * codes, advertising report types, ACL boundary flags, LE fixed channels, status and reason codes, command opcodes,
 * and the byte order of Bluetooth addresses. The one home of each (Core Spec Vol 4 Part E; Vol 3 Part A for CIDs).
 * Pure constants and two conversions; the packets built from them are in hci-packets.ts, H4 stream framing in h4.ts.
 */

export const H4_COMMAND = 0x01;
export const H4_ACL = 0x02;
export const H4_SCO = 0x03;
export const H4_EVENT = 0x04;
export const H4_ISO = 0x05;

/** HCI event codes. */
export const EVT_DISCONNECTION_COMPLETE = 0x05;
export const EVT_COMMAND_COMPLETE = 0x0e;
export const EVT_COMMAND_STATUS = 0x0f;
export const EVT_NUMBER_OF_COMPLETED_PACKETS = 0x13;
export const EVT_LE_META = 0x3e;

/** LE Meta subevent codes. */
export const LE_CONNECTION_COMPLETE = 0x01;
export const LE_ADVERTISING_REPORT = 0x02;
export const LE_CONNECTION_UPDATE_COMPLETE = 0x03;

/** Advertising report event types (legacy). */
export const ADV_IND = 0x00;
export const ADV_DIRECT_IND = 0x01;
export const ADV_SCAN_IND = 0x02;
export const ADV_NONCONN_IND = 0x03;
export const SCAN_RSP = 0x04;

/** ACL Packet_Boundary_Flag values. */
export const PB_FIRST_NON_FLUSHABLE = 0b00;
export const PB_CONTINUING = 0b01;
export const PB_FIRST_FLUSHABLE = 0b10;

/** L2CAP fixed channels on LE. */
export const CID_ATT = 0x0004;
export const CID_LE_SIGNALING = 0x0005;
export const CID_SMP = 0x0006;

/** HCI status / reason codes used by the simulator. */
export const HCI_SUCCESS = 0x00;
export const HCI_UNKNOWN_COMMAND = 0x01;
export const HCI_UNKNOWN_CONNECTION_ID = 0x02;
export const HCI_CONNECTION_TIMEOUT = 0x08;
export const HCI_COMMAND_DISALLOWED = 0x0c;
export const HCI_INVALID_PARAMETERS = 0x12;
export const HCI_REMOTE_USER_TERMINATED = 0x13;
export const HCI_LOCAL_HOST_TERMINATED = 0x16;

export function opcode(ogf: number, ocf: number): number {
  return ((ogf & 0x3f) << 10) | (ocf & 0x3ff);
}

/** Command opcodes the virtual controller knows. */
export const OP = {
  DISCONNECT: opcode(0x01, 0x0006),
  SET_EVENT_MASK: opcode(0x03, 0x0001),
  RESET: opcode(0x03, 0x0003),
  SET_EVENT_FILTER: opcode(0x03, 0x0005),
  READ_LE_HOST_SUPPORTED: opcode(0x03, 0x006c),
  WRITE_LE_HOST_SUPPORTED: opcode(0x03, 0x006d),
  READ_LOCAL_VERSION: opcode(0x04, 0x0001),
  READ_LOCAL_SUPPORTED_COMMANDS: opcode(0x04, 0x0002),
  READ_BUFFER_SIZE: opcode(0x04, 0x0005),
  READ_BD_ADDR: opcode(0x04, 0x0009),
  READ_RSSI: opcode(0x05, 0x0005),
  LE_SET_EVENT_MASK: opcode(0x08, 0x0001),
  LE_READ_BUFFER_SIZE: opcode(0x08, 0x0002),
  LE_READ_LOCAL_SUPPORTED_FEATURES: opcode(0x08, 0x0003),
  LE_SET_SCAN_PARAMETERS: opcode(0x08, 0x000b),
  LE_SET_SCAN_ENABLE: opcode(0x08, 0x000c),
  LE_CREATE_CONNECTION: opcode(0x08, 0x000d),
  LE_CREATE_CONNECTION_CANCEL: opcode(0x08, 0x000e),
  LE_CONNECTION_UPDATE: opcode(0x08, 0x0013),
  LE_SET_DATA_LENGTH: opcode(0x08, 0x0022),
  LE_READ_MAX_DATA_LENGTH: opcode(0x08, 0x002f),
} as const;

// ---------------------------------------------------------------------------------------------------------------------
// Addresses

const ADDRESS = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** "d8:75:ba:00:00:01": six bytes in hex, colon separated, most significant first (either case). */
export function isBluetoothAddress(text: string): boolean {
  return ADDRESS.test(text);
}

/** "d8:75:ba:00:00:01" → 6 bytes, least significant first (HCI order). */
export function addressToBytes(address: string): Buffer {
  if (!isBluetoothAddress(address)) throw new RangeError(`not a Bluetooth address: ${JSON.stringify(address)}`);
  return Buffer.from(address.split(":").reverse().join(""), "hex");
}

/** 6 bytes in HCI order → "d8:75:ba:00:00:01" (lowercase). */
export function bytesToAddress(bytes: Buffer): string {
  if (bytes.length !== 6) throw new RangeError(`an address is 6 bytes, got ${bytes.length}`);
  return Array.from(bytes)
    .reverse()
    .map((b) => b.toString(16).padStart(2, "0"))
    .join(":");
}
