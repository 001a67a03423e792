/** Entry point of the demo's guest program (built to `dist/demo-guest.js`; `vmm run` loads it on vCPUs). */
export { default } from './demo/guest-demo.js';
