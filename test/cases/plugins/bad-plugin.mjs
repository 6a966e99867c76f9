// Not a linegate plugin: wrong id form, unknown kind, config that is not a schema, no init.
export const plugin = {
  manifest: { id: 'Invert', kind: 'filter', description: 'x', config: { dir: 'string' } },
};
