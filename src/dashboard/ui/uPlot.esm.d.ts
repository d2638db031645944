// The UI imports uPlot as "./uPlot.esm.js", the copy the server publishes beside the UI
// modules; this declaration gives that specifier the npm package's types.
import uPlot from 'uplot';
export default uPlot;
