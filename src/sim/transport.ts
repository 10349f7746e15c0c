/**
 * The simulator as a transport: the scenario (a file, or the built-in one) becomes a Simulation whose virtual
 * controller is the HCI peer noble talks to. The BLE layer opens it by name once the node layer has registered it
 * (src/ble-config.ts); this module knows nothing of the BLE layer beyond the shape it returns.
 */
import * as path from "node:path";
import type { VirtualController } from "./controller";
import { DEFAULT_SCENARIO, loadScenarioFile, parseScenario, Simulation, type Scenario } from "./scenario";
import { ScenarioError } from "./validate";

export interface SimulatorTransportSettings {
  /** A scenario file; "" for the built-in scenario. */
  scenario: string;
  timeScale?: number;
}

export interface SimulatorOpening {
  readonly peer: VirtualController;
  readonly simulation: Simulation;
  start(): void;
  close(): void;
}

/**
 * Builds the simulation of `settings`, not yet started. A scenario that cannot be used throws an Error that names
 * the field and the problem, never the file's path (it may come from an environment variable).
 */
export function openSimulator(settings: SimulatorTransportSettings): SimulatorOpening {
  let simulation: Simulation;
  try {
    const scenario: Scenario = settings.scenario ? loadScenarioFile(settings.scenario) : parseScenario(DEFAULT_SCENARIO, "");
    // Each peripheral kind checks its own fields as it is built.
    simulation = new Simulation(scenario, settings.timeScale !== undefined ? { timeScale: settings.timeScale } : {});
  } catch (error) {
    if (!(error instanceof ScenarioError)) throw new Error(error instanceof Error ? error.message : String(error), { cause: error });
    const inFile = settings.scenario && error.field === path.resolve(settings.scenario) ? "" : `${error.field}: `;
    throw new Error(`${inFile}${error.problem}`, { cause: error });
  }
  let closed = false;
  return {
    peer: simulation.controller,
    simulation,
    start: () => simulation.start(),
    close: () => {
      if (closed) return;
      closed = true;
      simulation.close();
    },
  };
}
