import { createContext } from "preact";
import { useContext, useEffect, useRef } from "preact/hooks";

/** What every view gets from the logged-in page: the API client and where to report failures. */
export const Session = createContext(null);

export function useSession() {
  return useContext(Session);
}

/** Runs `load` now and every `ms` until the view closes; failures go to the session's handler. */
export function usePoll(ms, load, deps = []) {
  const { fail } = useSession();
  const latest = useRef(load);
  latest.current = load;
  useEffect(() => {
    const run = () => latest.current().catch(fail);
    run();
    const timer = setInterval(run, ms);
    return () => clearInterval(timer);
  }, deps);
}
