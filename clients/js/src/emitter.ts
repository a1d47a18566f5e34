// A small typed event emitter: `on` answers the function that removes the listener.

export class Emitter<Events extends object> {
  private listeners = new Map<keyof Events, Set<(value: never) => void>>();

  on<K extends keyof Events>(type: K, listener: (value: Events[K]) => void): () => void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(listener as (value: never) => void);
    return () => this.off(type, listener);
  }

  off<K extends keyof Events>(type: K, listener: (value: Events[K]) => void): void {
    this.listeners.get(type)?.delete(listener as (value: never) => void);
  }

  protected emit<K extends keyof Events>(type: K, value: Events[K]): void {
    for (const listener of [...(this.listeners.get(type) ?? [])]) {
      try {
        (listener as (value: Events[K]) => void)(value);
      } catch (e) {
        // A listener's bug must not break the call; it still shows in the console.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}
