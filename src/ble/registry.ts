/**
 * The registry of open adapters: config nodes that name the same adapter share one BleAdapter, opened by the first
 * and closed when the last reference and the last lease are gone.
 */
import { adapterKey, type TransportSettings } from "./adapter";
import { BleAdapter, type PoolPolicy } from "./pool";

const registry = new Map<string, BleAdapter>();

/**
 * The adapter for these settings, shared by every config node that names the same adapter.
 * The first user's policy applies; the caller holds a reference until it calls unref().
 */
export function acquireAdapter(settings: TransportSettings, policy: PoolPolicy): BleAdapter {
  const key = adapterKey(settings);
  let adapter = registry.get(key);
  if (!adapter) {
    adapter = new BleAdapter(settings, policy, {
      // A closing adapter leaves at once: the next config node for the same adapter opens a new one.
      onClose: (closing) => {
        if (registry.get(key) === closing) registry.delete(key);
      },
    });
    registry.set(key, adapter);
  }
  adapter.ref();
  return adapter;
}

/** Adapters currently open (for tests that check nothing leaks). */
export function openAdapterCount(): number {
  return registry.size;
}
