/** A shared wall clock for "3 s ago" labels: one timer for the whole page, one tick a second. */
class Clock {
  now = $state(Date.now());
  constructor() {
    setInterval(() => (this.now = Date.now()), 1000);
  }
}
export const clock = new Clock();
