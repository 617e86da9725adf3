/** `talon run`: the daemon in the foreground (systemd runs exactly this). */
import { parse, helpText, type CommandSpec, type Io } from '../args.ts';

export const spec: CommandSpec = {
  name: 'talon run',
  summary: 'Run the Talon daemon in the foreground until SIGTERM or SIGINT.',
  options: {
    config: {
      type: 'string',
      short: 'c',
      value: 'FILE',
      description: 'config file (YAML or JSON); without one, the defaults',
    },
    data: {
      type: 'string',
      short: 'd',
      value: 'DIR',
      description: "data folder (beats TALON_DATA and the config's dataDir)",
    },
  },
  notes: `environment:
  TALON_DATA=DIR           data folder
  TALON_HTTP=host:port     admin HTTP listener
  TALON_MQTT=host:port     embedded broker listener
  TALON_MQTT_URL=url       use an external broker instead of the embedded one
  TALON_DEBUG=1            print stack traces with errors`,
};

export async function main(argv: string[], io: Io): Promise<number> {
  const args = parse(spec, argv);
  if (args.help) {
    io.out(helpText(spec));
    return 0;
  }
  const configFile = args.values.config as string | undefined;
  const dataDir = args.values.data as string | undefined;
  const kernel = await import('../../host/kernel.ts');
  return kernel.runDaemon({
    ...(configFile !== undefined ? { configFile } : {}),
    ...(dataDir !== undefined ? { dataDir } : {}),
  });
}
