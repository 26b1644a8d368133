// Type tests: compiled by `tsc --build` (test/tsconfig.json), never run. Each `@ts-expect-error`
// line must fail to compile; if the types ever allow it, the unused directive fails the build.
import {
  type Backend,
  type Plugin,
  type PluginFactory,
  type PluginHooks,
  type PluginHost,
  STAGE_BALANCE,
  SyncHook,
  createPluginHooks,
} from '@wslb/core';
import { HealthCheckPlugin } from '@wslb/health-check';

declare const host: PluginHost;
declare const hooks: PluginHooks;
const stage = { name: 'types', stage: STAGE_BALANCE };

// A select tap returns a Backend or undefined, sync or async.
host.hooks.select.tap(stage, (_ctx, candidates) => candidates[0]);
host.hooks.select.tap(stage, () => undefined);
host.hooks.select.tapPromise(stage, async (_ctx, candidates) => candidates.at(-1));
host.hooks.select.tapAsync(stage, (_ctx, candidates, done) => done(null, candidates[0]));
// @ts-expect-error not a backend id
host.hooks.select.tap(stage, (_ctx, candidates) => candidates[0]?.id);
// @ts-expect-error not the candidate list
host.hooks.select.tap(stage, (_ctx, candidates) => candidates);
// @ts-expect-error not null
host.hooks.select.tap(stage, () => null);
// @ts-expect-error not an object shaped like part of a backend
host.hooks.select.tap(stage, () => ({ id: 'b1', url: 'ws://127.0.0.1:9001' }));
// @ts-expect-error not a promise of something else
host.hooks.select.tapPromise(stage, async () => 'b1');
// @ts-expect-error candidates are read-only: a tap cannot reorder the core's list
host.hooks.select.tap(stage, (_ctx, candidates) => candidates.sort()[0]);

// A plugin has a name.
export const named: Plugin = { name: 'named', apply() {} };
// @ts-expect-error a plugin without a name
export const nameless: Plugin = { apply() {} };
// @ts-expect-error a factory returning a plugin without a name
export const factory: PluginFactory = () => ({ apply() {} });

// Plugin-facing hooks can be tapped, never called or intercepted.
hooks.open.tap('types', (ctx) => ctx.id);
host.hooks.close.tap('types', (_ctx, info) => info.reason);
// @ts-expect-error a plugin cannot call a sync hook
hooks.open.call(undefined as never);
// @ts-expect-error a plugin cannot run an async hook
void hooks.select.promise(undefined as never, []);
// @ts-expect-error nor call it with a callback
hooks.connect.callAsync(undefined as never, () => {});
// @ts-expect-error nor intercept one
hooks.close.intercept({});
// @ts-expect-error apply() gets the tap-only hooks too
host.hooks.backendState.call(undefined as never, 'up', 'reason');

// Hooks a plugin publishes: the publisher calls them, the others only tap.
const published = createPluginHooks(() => ({ picked: new SyncHook<[Backend, number]>(['backend', 'ms']) }));
published.of(host).picked.call(undefined as never, 1);
published.getHooks(host).picked.tap('types', (backend, ms) => backend.weight * ms);
// @ts-expect-error other plugins cannot call them
published.getHooks(host).picked.call(undefined as never, 1);
// @ts-expect-error and the arguments are typed
published.getHooks(host).picked.tap('types', (_backend, ms: string) => ms);

// A built-in plugin's published hooks follow the same rule: health-check's results, tap only.
HealthCheckPlugin.getHooks(host).check.tap('types', (backend, result) => backend.id === result.backend);
// @ts-expect-error other plugins cannot call health-check's hooks
HealthCheckPlugin.getHooks(host).check.call(undefined as never, undefined as never);
// @ts-expect-error nor intercept them
HealthCheckPlugin.getHooks(host).check.intercept({});
