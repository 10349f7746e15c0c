/**
 * Nordic UART Service: Nordic Semiconductor's vendor-specific GATT service that carries a byte stream each way.
 * The one home of its UUIDs, for the nodes and for the simulator's peripherals (XOSS control: src/protocol/xoss.ts).
 */
export const NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
/** Central → peripheral (write, write without response). */
export const NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e";
/** Peripheral → central (notify). */
export const NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e";
