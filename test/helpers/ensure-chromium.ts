// Run by `npm test` before the test files: installing Chromium (apt, when missing) can take
// minutes on a fresh machine, longer than one test file may take.
import { ensureChromium } from './chromium.js';

const skip = ensureChromium();
console.log(skip ? `browser tests will be skipped: ${skip}` : 'chromium is installed');
