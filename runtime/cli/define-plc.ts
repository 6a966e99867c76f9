import type { Command } from 'commander';
import { nonNegative, oneOf, portArg, positive, positiveInt } from './args.js';
import type { CommandContext } from './context.js';
import type { PlcSimOptions } from './plc-sim.js';

const addressSpaceArg = oneOf(['standard', 'minimal'] as const);

/** `plc-sim`: its many options here; node-opcua loads only when it runs. */
export function addPlcSimCommand(add: (name: string) => Command, ctx: CommandContext, exit: (code: number) => void): void {
  add('plc-sim')
    .description(
      'serve a simulated PLC over OPC UA that plays the PLC side of the handshake (VisionReady interlock, trigger, echo check, ack, heartbeats) until --duration, --cycles or SIGINT/SIGTERM; logs go to stderr, one {"plcSim": report} JSON line to stdout at exit',
    )
    .option('--port <n>', 'TCP port; 0 picks a free one (logged)', portArg, 4840)
    .option('--host <address>', 'address to listen on (0.0.0.0 for every interface)', '127.0.0.1')
    .option('--rate <hz>', 'triggers per second; 0: none (a cycle still running skips a tick)', nonNegative, 2)
    .option('--users <file>', 'JSON list of {"username", "password"} allowed to log in')
    .option('--secure', 'only Sign and SignAndEncrypt endpoints (Basic256Sha256, Aes128_Sha256_RsaOaep), no anonymous sessions; needs --users')
    .option('--pki <dir>', 'server PKI folder, kept between runs (default: a temp folder, removed at exit); unknown client certificates are accepted')
    .option('--duration <seconds>', 'stop after this long (default: until SIGINT/SIGTERM)', positive)
    .option('--cycles <n>', 'run n cycles back to back (each once the last has ended, the interlock allows and --trigger-low-ms has passed), then stop; not with --rate', positiveInt)
    .option('--no-interlock', 'raise Trigger even while VisionReady is false or VisionHeartbeat stands still')
    .option('--min-sampling-ms <ms>', "the server's floor for a monitored item's sampling interval (default 10; 0: every change)", nonNegative)
    .option('--min-publishing-ms <ms>', "the server's floor for a subscription's publishing interval (default 10)", positive)
    .option('--ack-delay-ms <ms>', 'ResultValid seen -> verdict latched and ResultAck raised (default 0)', nonNegative)
    .option('--trigger-low-ms <ms>', 'the least time Trigger stays low between two cycles (default 100)', nonNegative)
    .option('--trigger-jitter-ms <ms>', 'up to this much more low time, at random, so that back-to-back cycles do not lock onto the publishing timer (default 0)', nonNegative)
    .option('--address-space <kind>', "standard: the whole OPC UA standard nodeset, as a PLC's server has it; minimal: node-opcua's small base nodeset, a second or more of CPU less per start (default standard)", addressSpaceArg)
    .option('--result-timeout-ms <ms>', 'bound on each wait of a cycle: the interlock, ResultValid, its drop (default 2000)', positive)
    .action(async (opts: PlcSimOptions, cmd: Command) => exit(await (await import('./plc-sim.js')).plcSimCommand(opts, cmd.getOptionValueSource('rate') === 'cli', ctx)));
}
