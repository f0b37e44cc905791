// uPlot and its stylesheet, in a chunk of their own: only pages with a chart load them.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export default uPlot;
