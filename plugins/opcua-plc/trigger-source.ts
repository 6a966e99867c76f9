import { definePlugin, type FrameInput, type PluginContext } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { listImages } from '../source-folder/index.js';
import { TriggerConfig } from './config.js';
import { FixtureCamera } from './fixture-camera.js';
import { Handshake, TRIGGERS } from './handshake.js';

/**
 * Frames on the PLC's command: each trigger takes one image, tagged with the
 * PLC's part id and the trigger it answers. The link is the PLC sink's, a
 * dependency the station file declares (`plc:`) and the compiler checks.
 */
export const opcuaTrigger = definePlugin({
  manifest: {
    id: 'core/opcua-trigger@1',
    kind: 'source',
    description: "Takes a frame whenever the PLC raises its trigger; the part id is the PLC's, and the frame carries the trigger it answers.",
    config: TriggerConfig,
    produces: [{ type: 'image/encoded' }],
    requires: [{ field: 'plc', service: TRIGGERS }],
  },
  async init(config, ctx) {
    const handshake = ctx.dependency('plc');
    if (!(handshake instanceof Handshake)) {
      throw new LinegateError('LG_ERR_STATION_DEPENDENCY', [ctx.step, 'core/opcua-trigger@1', TRIGGERS, 'plc', `step "${config.plc}" offered something else`], { step: ctx.step });
    }
    const dir = ctx.resolvePath(config.camera.dir);
    // The same listing as core/folder-source@1: stable byte order, hidden files skipped, links followed.
    const files = await listImages(dir, config.camera.extensions, true).then(
      (entries) => entries.map((e) => e.file),
      () => {
        throw new LinegateError('LG_ERR_SOURCE_NOT_FOUND', [dir], { step: ctx.step });
      },
    );
    if (files.length === 0) throw new LinegateError('LG_ERR_SOURCE_EMPTY', [dir, config.camera.extensions.join(' ')], { step: ctx.step });
    const detach = handshake.attach(ctx.step);
    const camera = new FixtureCamera(dir, files);
    // Closed, it takes no trigger: its frames end at once, and a wait for the next trigger ends with the close.
    const closed = new AbortController();
    return {
      async close() {
        closed.abort();
        detach();
      },
      async *frames(run: PluginContext): AsyncGenerator<FrameInput> {
        const signal = AbortSignal.any([run.signal, closed.signal]);
        for (let t = await handshake.next(signal); t !== undefined && !closed.signal.aborted; t = await handshake.next(signal)) {
          let shot: { readonly file: string; readonly data: Buffer };
          try {
            shot = await camera.take();
          } catch (e) {
            const err = new LinegateError('LG_ERR_SOURCE_FRAME', [t.partId, messageOf(e)], { step: ctx.step, cause: e });
            run.log.error({ err, partId: t.partId }, err.message);
            handshake.failed(t.ref, err);
            continue;
          }
          yield { partId: t.partId, trigger: t.ref, ref: shot.file, image: { kind: 'encoded', data: shot.data }, capturedAt: new Date() };
        }
      },
    };
  },
});
