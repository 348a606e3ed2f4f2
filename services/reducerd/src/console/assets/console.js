// Pure Reducer web console: a single page over reducerd's JSON API (/api/v1).
// Every value from the server reaches the DOM as text (textContent or text nodes), never as
// markup. Pages are hash routes; each sets document.body.dataset.ready to its route name
// once its data is on screen.
//
// Plain ES modules, loaded by the browser as they are (no build step):
//   console.js    this entry: the route table
//   core.js       elements, API calls and the token, banners, the router
//   view.js       formatting, tables, action buttons, the state diff
//   workflows.js  #/workflows and #/workflow
//   ops.js        #/pipeline, #/dead-letters and #/health

import { start } from './core.js';
import { renderDeadLetters, renderHealth, renderPipeline } from './ops.js';
import { renderWorkflow, renderWorkflows } from './workflows.js';

start({
  workflows: renderWorkflows,
  workflow: renderWorkflow,
  pipeline: renderPipeline,
  'dead-letters': renderDeadLetters,
  health: renderHealth,
});
