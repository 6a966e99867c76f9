/**
 * Imported for its effect, before any static import of node-opcua (the simulated PLC's server):
 * node-opcua's loggers go to linegate's log and its W27 diagnostic is skipped (see opcua.ts), as
 * they do for the code that loads node-opcua through loadOpcua().
 */
import { routeOpcuaLoggers, skipRsa15Diagnostic } from './opcua.js';

skipRsa15Diagnostic();
routeOpcuaLoggers();
