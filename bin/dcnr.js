#!/usr/bin/env node
// The `dcnr` command. The sources are TypeScript, run through tsx's loader: no build
// step, so a fresh clone works after `npm ci`.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
